"""mixnas: neural-architecture search and design-space exploration for vision MLPs.

The Python API (:mod:`mixnas.api`, docs/python.md) is re-exported here lazily: ``mixnas.search(...)``,
``mixnas.load_space``, ``mixnas.load_run``, ``mixnas.run_study`` and the rest import the search driver,
Optuna and pandas only when first used, so ``import mixnas`` costs what the model builder costs.

``mixnas.search`` is also the search driver's module (``from mixnas.search import Search``). Importing a
submodule makes it an attribute of its package, which would hide the API function of that name; so the
package sets the module's class to one that is callable: ``mixnas.search(space, ...)`` calls
:func:`mixnas.api.search`, and everything else about the module is unchanged.
"""

import sys
import types

__version__ = "0.1.0"  # before the imports: submodules read it


class _SearchModule(types.ModuleType):
    """The module :mod:`mixnas.search`, callable as :func:`mixnas.api.search` (see the package docstring)."""

    def __call__(self, *args, **kwargs):
        from mixnas.api import search

        return search(*args, **kwargs)


class _Package(types.ModuleType):
    """The package: the submodule ``search``, when Python binds it here on import, becomes callable."""

    def __setattr__(self, name, value):
        if name == "search" and type(value) is types.ModuleType:
            value.__class__ = _SearchModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec  # noqa: E402
from mixnas.errors import ArchError, MixnasError  # noqa: E402
from mixnas.models import create_model, resolve_arch  # noqa: E402
from mixnas.network import build_model  # noqa: E402

# The Python API, imported on first use (module-level __getattr__, PEP 562).
API = ("Dashboard", "InvalidCandidate", "Run", "Space", "StudyRun", "load_run", "load_space", "load_study_run",
       "run_study", "study_report", "write_dashboard")


def __getattr__(name):
    if name == "search":  # the submodule, callable (see above): importing it binds it here
        import importlib

        return importlib.import_module("mixnas.search")
    if name in API:
        from mixnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'mixnas' has no attribute {name!r}")


__all__ = ["ArchConfig", "ArchError", "HeadSpec", "InputSpec", "MixerSpec", "MixnasError", "StageSpec",
           "StemSpec", "build_model", "create_model", "resolve_arch", "__version__", *API, "search"]
