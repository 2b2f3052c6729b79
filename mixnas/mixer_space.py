"""A search space around one mixer, written from its declared parameters (``mixnas space from-mixer``).

A researcher with a new token mixer wants to know which of its settings matter before comparing it with the
zoo. Its :class:`~mixnas.registry.Param` declarations already say what it accepts, so each becomes a dimension
of a space in the space language (docs/spaces.md), on a small isotropic backbone like the token-mixer
comparison's (patch-4 stem on 32x32 inputs, an 8x8 token grid, an MLP channel mixer; another dataset or input
size keeps the 8x8 grid with a patch of ``image_size / 8``):

* a parameter with ``choices``: a categorical over them; a ``bool``: ``[false, true]``;
* an ``int``: a small set around its default (half, the default, double; ``0, 1, 2`` style from a default of 0
  or 1), clipped to its bounds, each value moved to the nearest one the family's validity rules accept with
  the other parameters at their defaults (an odd-kernel rule turns 6 into 5 or 7);
* a ``float``: a log range from a quarter to 4 x its default (linear from 0 for a default of 0), clipped to
  its bounds and shrunk towards the default until the family accepts both ends;
* a ``str`` without choices: fixed at its default; a width-dependent (callable) default: left at its default
  (the file says so in a comment), since its values depend on the width the search chooses.

The backbone's width (the widths among 32-128 the mixer accepts at its defaults) and depth are dimensions
too, with the channel MLP's ratio. The file names the plugin (``plugins:``), so it is self-contained, and
:func:`write_space` checks that it loads (:func:`mixnas.space.load_space`) before returning.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mixnas.errors import ArchError, MixnasError
from mixnas.plugins import Plugin, load_plugin, split_target
from mixnas.registry import MixerContext, MixerFamily, Param
from mixnas.registry import find_mixer as registry_find_mixer

GRID = (8, 8)  # a patch-4 stem on 32x32 inputs
WIDTHS = (32, 48, 64, 96, 128)
PROBE_WIDTH = 64  # the width at which parameter values are checked against the family's rules
DEPTHS = (2, 4, 6)
NEARBY = 3  # how far an int value may move to one the family accepts


@dataclass(frozen=True)
class Dimension:
    """What one declared parameter became: its YAML value (a domain or a fixed value), or None (left at its
    width-dependent default), and a note for the file's header."""

    param: str
    value: Any
    note: str


def find_mixer(target: str, role: str | None = None) -> tuple[MixerFamily, Plugin | None]:
    """The family ``target`` names (:func:`mixnas.registry.find_mixer`: ``FILE.py:NAME``, ``module:NAME`` or a
    registered ``NAME``, the registered or class name) and the plugin it came from, for ``plugins:``."""
    module, _ = split_target(target)
    family = registry_find_mixer(target, role)
    return family, load_plugin(module) if module else None  # loaded already: the same Plugin record


def _accepts(family: MixerFamily, params: dict[str, Any], dim: int = PROBE_WIDTH) -> bool:
    try:
        family.resolve(params, MixerContext(dim, GRID), family.name)
    except (ArchError, MixnasError, ValueError, TypeError, ZeroDivisionError):
        return False
    return True


def _bounds(p: Param) -> tuple[float, float]:
    low = p.min if p.min is not None else (0 if p.kind is float or p.default == 0 else 1)
    return low, p.max if p.max is not None else math.inf


def _int_values(family: MixerFamily, p: Param) -> list[int]:
    d = int(p.default)
    low, high = _bounds(p)
    targets = [d, d + 1, d + 2] if d <= 1 else [max(1, d // 2), d, 2 * d]
    found: list[int] = []
    for t in targets:
        for v in sorted(range(t - NEARBY, t + NEARBY + 1), key=lambda v: (abs(v - t), v)):
            if low <= v <= high and _accepts(family, {p.name: v}):
                found.append(v)
                break
    return sorted(set(found)) or [d]


def _float_range(family: MixerFamily, p: Param) -> tuple[float, float, bool]:
    d = float(p.default)
    low, high = _bounds(p)
    lo, hi = (max(low, d / 4), min(high, 4 * d)) if d > 0 else (max(low, 0.0), min(high, 1.0))
    for _ in range(8):  # halve the distance to the default until the family accepts the end
        if _accepts(family, {p.name: lo}):
            break
        lo = (lo + d) / 2
    for _ in range(8):
        if _accepts(family, {p.name: hi}):
            break
        hi = (hi + d) / 2
    return lo, hi, lo > 0


def dimension(family: MixerFamily, p: Param) -> Dimension:
    """The domain a declared parameter becomes (see the module docstring)."""
    if p.choices is not None:
        options = [c for c in p.choices if _accepts(family, {p.name: c})] or list(p.choices)
        value = {"choice": options} if len(options) > 1 else options[0]
        return Dimension(p.name, value, f"one of its choices {list(p.choices)}")
    if p.kind is bool:
        return Dimension(p.name, {"choice": [False, True]}, "true or false")
    if callable(p.default):
        at = p.default_for(MixerContext(PROBE_WIDTH, GRID))
        return Dimension(p.name, None, f"width-dependent default ({at!r} at width {PROBE_WIDTH}): left at its "
                                       "default, which follows the width the search picks")
    if p.kind is int:
        values = _int_values(family, p)
        note = f"int, default {p.default}: half, the default and double, where its rules accept them"
        return Dimension(p.name, {"choice": values} if len(values) > 1 else values[0], note)
    if p.kind is float:
        lo, hi, log = _float_range(family, p)
        if lo >= hi:
            return Dimension(p.name, float(p.default), f"float, default {p.default}: fixed (no wider range accepted)")
        note = f"float, default {p.default}: {'a log' if log else 'a linear'} range around it"
        return Dimension(p.name, {"float": [_round(lo), _round(hi)], **({"log": True} if log else {})}, note)
    return Dimension(p.name, p.default, f"text without choices: fixed at its default {p.default!r}")


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def dimensions(family: MixerFamily) -> list[Dimension]:
    return [dimension(family, p) for p in family.params]


def _widths(family: MixerFamily) -> list[int]:
    ok = [w for w in WIDTHS if _accepts(family, {}, w)]
    if not ok:
        raise MixnasError(f"{family.role} mixer {family.name!r} accepts none of the widths {list(WIDTHS)} at its "
                          f"defaults on an {GRID[0]}x{GRID[1]} token grid")
    return ok


@dataclass(frozen=True)
class SpaceTask:
    """The task a written space trains on: a registered dataset, its classes and input size (the stem's patch is
    ``image_size // 8``, so the token grid stays the 8x8 the mixer was probed on)."""

    dataset: str = "fashion-mnist"
    num_classes: int = 10
    image_size: int = 32
    in_channels: int = 1

    @property
    def patch_size(self) -> int:
        return self.image_size // GRID[0]


def space_task(dataset: str = "fashion-mnist", num_classes: int | None = None,
               image_size: int | None = None) -> SpaceTask:
    """The :class:`SpaceTask` for a registered dataset: its channels, its class count unless given (a dataset
    whose classes the user's folder decides needs ``num_classes``), its default image size unless given (a
    multiple of 8)."""
    from mixnas.data import get_dataset

    spec = get_dataset(dataset)  # an unknown name: the list of registered ones
    classes = num_classes if num_classes is not None else spec.num_classes
    if classes is None:
        raise MixnasError(f"dataset {dataset!r} has as many classes as its folder: pass --num-classes N")
    if classes < 2:
        raise MixnasError(f"--num-classes must be at least 2, found {classes}")
    size = image_size if image_size is not None else spec.default_image_size
    if size < GRID[0] or size % GRID[0]:
        raise MixnasError(f"--image-size {size}: must be a positive multiple of {GRID[0]} (the written stem's "
                          f"patch is image_size / {GRID[0]}, for an {GRID[0]}x{GRID[1]} token grid); allowed: 32, "
                          "64, 224, ...")
    return SpaceTask(dataset, classes, size, spec.in_channels)


def space_dict(family: MixerFamily, plugin_ref: str | None, task: SpaceTask = SpaceTask()) -> dict[str, Any]:
    """The space as plain data (see the module docstring)."""
    branch = {d.param: d.value for d in dimensions(family) if d.value is not None}
    mixers = {"token_mixer": {family.name: branch}, "channel_mixer": {"mlp": {
        "channel_hidden_dim": {"ratio": {"choice": [2, 4]}}}}}
    if family.role == "channel":
        mixers = {"token_mixer": {"mixer": {}}, "channel_mixer": {family.name: branch}}
    return {
        "name": f"{family.name}_space",
        **({"plugins": [plugin_ref]} if plugin_ref else {}),
        "task": {"dataset": task.dataset, "image_size": task.image_size, "in_channels": task.in_channels,
                 "num_classes": task.num_classes, "objectives": ["top1:max", "macs:min"], "train": {"epochs": 2}},
        "arch": {"layout": "isotropic", "stem": {"patch_size": task.patch_size, "dim": {"choice": _widths(family)}},
                 "head": {"norm": "layernorm", "pool": "mean"},
                 "stages": {"count": 1, "depth": {"choice": list(DEPTHS)}, **mixers}},
    }


class _Flow(dict):
    """A domain (``{choice: [...]}``), written on one line as the shipped spaces write them."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def _flow_domains(node: Any) -> Any:
    if isinstance(node, dict):
        inner = {k: _flow_domains(v) for k, v in node.items()}
        return _Flow(inner) if set(node) & {"choice", "float", "int", "ratio"} else inner
    return node


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, 110, initial_indent=f"# {indent}", subsequent_indent=f"# {indent}  ")


def space_text(family: MixerFamily, plugin_ref: str | None, command: str, task: SpaceTask = SpaceTask()) -> str:
    """The YAML file: a header saying where each parameter's domain comes from, then the space."""
    lines = _comment(f"A search space around the {family.role} mixer {family.name!r}"
                     + (f" ({family.doc.rstrip('.')})" if family.doc else "") + f", written by `{command}`.")
    lines += ["#", "# Every declared parameter is a dimension:"]
    for d in dimensions(family):
        lines += _comment(f"{d.param}: {d.note}", "  ")
    lines += ["#"] + _comment(f"On a backbone like the token-mixer comparison's (isotropic, patch-{task.patch_size} "
                              f"stem on {task.image_size}x{task.image_size} {task.dataset} inputs, an MLP channel "
                              "mixer), whose width (those the mixer accepts at its defaults) and depth are searched "
                              "too. Check it with `mixnas space check FILE`, then `mixnas search --space FILE`.")
    body = yaml.dump(_flow_domains(space_dict(family, plugin_ref, task)), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=None, width=110)
    return "\n".join(lines) + "\n" + body


def plugin_reference(plugin: Plugin | None, out: Path) -> str | None:
    """How the written file names the plugin: a file relative to the space file, or the module name."""
    if plugin is None:
        return None
    if plugin.kind == "file" and plugin.file:
        return os.path.relpath(plugin.file, out.resolve().parent)
    return plugin.spec


def write_space(target: str, out: str | Path | None = None, command: str = "",
                check: Callable[[Path], Any] | None = None, role: str | None = None,
                task: SpaceTask = SpaceTask()) -> tuple[Path, MixerFamily]:
    """Write the space around ``target``'s mixer to ``out`` (default ``NAME_space.yaml``), training on ``task``
    (:func:`space_task`; Fashion-MNIST by default), and load it back (``check``, :func:`mixnas.space.load_space`
    by default); returns the path and the family."""
    from mixnas.space import load_space

    family, plugin = find_mixer(target, role)
    path = Path(out) if out else Path(f"{family.name}_space.yaml")
    if path.exists() and path.is_dir():
        raise MixnasError(f"--out {path} is a folder; name the YAML file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(space_text(family, plugin_reference(plugin, path),
                               command or f"mixnas space from-mixer {target}", task))
    (check or load_space)(path)
    return path, family
