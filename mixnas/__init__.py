"""mixnas: neural-architecture search and design-space exploration for vision MLPs."""

__version__ = "0.1.0"  # before the imports: submodules read it

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.errors import ArchError, MixnasError
from mixnas.models import create_model, resolve_arch
from mixnas.network import build_model

__all__ = ["ArchConfig", "ArchError", "HeadSpec", "InputSpec", "MixerSpec", "MixnasError", "StageSpec",
           "StemSpec", "build_model", "create_model", "resolve_arch", "__version__"]
