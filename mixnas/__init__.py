"""mixnas: neural-architecture search and design-space exploration for vision MLPs."""

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.errors import ArchError, MixnasError
from mixnas.network import build_model

__version__ = "0.1.0"

__all__ = ["ArchConfig", "ArchError", "HeadSpec", "InputSpec", "MixerSpec", "MixnasError", "StageSpec",
           "StemSpec", "build_model", "__version__"]
