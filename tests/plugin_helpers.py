"""A user's mixer written as a plugin file outside the package, shared by the plugin tests."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

MIXER = '''
from torch import nn
from mixnas.registry import MixerContext, Param, register_mixer


@register_mixer("token", "{name}", params=[Param("scale", float, 1.0, min=0.0)])
class {cls}(nn.Module):
    """A token mixer that scales the mean token."""

    def __init__(self, ctx: MixerContext, scale: float):
        super().__init__()
        self.scale = scale
        self.proj = nn.Linear(ctx.dim, ctx.dim)

    def forward(self, x):
        return self.proj(x.mean(1, keepdim=True).expand_as(x)) * self.scale
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def write_mixer(folder: Path, file: str = "mean_mixer.py", name: str = "plug_mean", cls: str = "MeanMixer") -> Path:
    """A plugin file registering the token mixer ``name`` (one parameter, ``scale``)."""
    return write(folder, file, MIXER.format(name=name, cls=cls))


def write_plugin_space(folder: Path, name: str, max_macs: str = "1G") -> tuple[Path, Path]:
    """The tiny search space of :mod:`search_helpers` with the plugin mixer ``name`` (``scale`` 0.5 or 1) as its
    token mixer, the plugin in ``folder/lab`` and the space in ``folder/spaces`` naming it relatively:
    ``(space file, plugin file)``."""
    from search_helpers import TINY_SPACE, TOKEN_MIXERS

    (folder / "lab").mkdir()
    (folder / "spaces").mkdir()
    plugin = write_mixer(folder / "lab", "lab_mixer.py", name=name, cls="LabMixer")
    space = folder / "spaces" / "plug.yaml"
    space.write_text((TINY_SPACE % {"max_macs": max_macs})
                     .replace("name: tiny\n", "name: plug\nplugins: [../lab/lab_mixer.py]\n")
                     .replace(TOKEN_MIXERS["mixer"], f"      {name}: {{scale: {{choice: [0.5, 1.0]}}}}\n"))
    return space, plugin


def unload(plugin: Path, name: str) -> None:
    """Make this process forget a loaded plugin file and its token mixer ``name``, as a fresh process would."""
    import sys

    from mixnas import plugins
    from mixnas.registry import _FAMILIES

    _FAMILIES["token"].pop(name, None)
    loaded = plugins._LOADED.pop(str(plugin.resolve()), None)
    if loaded is not None:
        sys.modules.pop(loaded.module, None)


def unloading_plugins() -> Iterator[None]:
    """Snapshot the registries and the loaded plugins; after the yield, undo what was registered and loaded
    since (mixers, models, datasets, counted operators, modules), so names can be reused and later tests see only
    the built-ins:
    a plugin loaded in one test must not be shipped with, or written atop the files of, another's search."""
    from mixnas import plugins
    from mixnas.complexity import _PLUGIN_OPS
    from mixnas.data import DATASETS
    from mixnas.registry import _FAMILIES, _MODELS, get_mixer, named_models

    get_mixer("token", "attention")  # the built-ins first: they stay
    named_models()
    before = {r: dict(f) for r, f in _FAMILIES.items()}
    models, datasets, loaded, ops = dict(_MODELS), dict(DATASETS), dict(plugins._LOADED), dict(_PLUGIN_OPS)
    yield
    for role, fams in before.items():
        _FAMILIES[role].clear()
        _FAMILIES[role].update(fams)
    for registry, kept in ((_MODELS, models), (DATASETS, datasets), (_PLUGIN_OPS, ops)):
        registry.clear()
        registry.update(kept)
    for key in set(plugins._LOADED) - set(loaded):
        sys.modules.pop(plugins._LOADED[key].module, None)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
