"""mixnas: neural-architecture search and design-space exploration for vision MLPs.

The Python API (:mod:`mixnas.api`, docs/python.md) is re-exported here lazily: ``mixnas.search(...)``,
``mixnas.load_space``, ``mixnas.load_run``, ``mixnas.run_study`` and the rest import the search driver
(:mod:`mixnas.search_driver`), Optuna and pandas only when first used, so ``import mixnas`` costs what the
model builder costs.
"""

__version__ = "0.1.0"  # before the imports: submodules read it

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.errors import ArchError, MixnasError
from mixnas.models import create_model, resolve_arch
from mixnas.network import build_model

# The Python API, imported on first use (module-level __getattr__, PEP 562).
API = ("Dashboard", "InvalidCandidate", "Run", "Space", "StudyRun", "load_run", "load_space", "load_study_run",
       "run_study", "search", "study_report", "write_dashboard")


def __getattr__(name):
    if name in API:
        from mixnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'mixnas' has no attribute {name!r}")


__all__ = ["ArchConfig", "ArchError", "HeadSpec", "InputSpec", "MixerSpec", "MixnasError", "StageSpec",
           "StemSpec", "build_model", "create_model", "resolve_arch", "__version__", *API]
