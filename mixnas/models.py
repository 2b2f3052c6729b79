"""Resolve what a user names (a registered model or an ArchConfig YAML file) into an ArchConfig or a model.

``create_model("strip_mlp_t", image_size=32, num_classes=10)`` is the timm-style one-liner; everything
below it goes through :class:`~mixnas.config.ArchConfig`, so overriding the task re-validates the whole
architecture (an image size the patch size does not divide is an :class:`~mixnas.errors.ArchError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mixnas.config import ArchConfig, arch_from_data
from mixnas.errors import ArchError, MixnasError
from mixnas.network import build_model
from mixnas.registry import get_named_model

YAML_SUFFIXES = (".yaml", ".yml")


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"runs/q/pareto.yaml#12"`` -> ``("runs/q/pareto.yaml", "12")``: a file and an optional entry."""
    path, sep, entry = ref.rpartition("#")
    return (path, entry) if sep and path.endswith(YAML_SUFFIXES) else (ref, None)


def looks_like_file(ref: str) -> bool:
    from mixnas.yamlio import exists

    path, _ = split_ref(ref)
    return path.endswith(YAML_SUFFIXES) or "/" in path or exists(path)


def load_arch_entries(path: str | Path) -> list[tuple[str, ArchConfig, dict]] | None:
    """The architectures of a collection file (``pareto.yaml`` of a search: a ``pareto:`` list of entries with
    an ``arch``), as ``(entry label, ArchConfig, the entry's other fields)``; None for a single-ArchConfig file."""
    return _arch_file(path)[1]


def _arch_file(path: str | Path) -> tuple[Any, list[tuple[str, ArchConfig, dict]] | None]:
    """The parsed file (an untrusted YAML file, read by :mod:`mixnas.yamlio`) and its entries when it is a
    collection (else None). A top-level ``plugins:`` list (.py paths relative to the file, or module names;
    :func:`mixnas.plugins.yaml_plugins`) is loaded first, so the file may use the mixers they register."""
    from mixnas.plugins import load_and_drop_plugins
    from mixnas.yamlio import exists, load_located

    path = Path(path)
    if not exists(path):
        raise MixnasError(f"{path}: no such architecture file")
    data = load_and_drop_plugins(load_located(path, "an ArchConfig YAML"))
    if not isinstance(data, dict) or "pareto" not in data:
        return data, None
    entries = data["pareto"]
    if not isinstance(entries, list):
        raise MixnasError(f"{path}:{_line(data, 'pareto')}: pareto: expected a list of entries, each with an "
                          "`arch` mapping")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("arch"), dict):
            raise MixnasError(f"{path}:{_line(entries, i)}: pareto[{i}]: expected a mapping with an `arch` mapping")
        label = str(entry.get("trial", i))
        arch = arch_from_data(entry["arch"], str(path), f"pareto[{i}].arch")
        out.append((label, arch, {k: v for k, v in entry.items() if k != "arch"}))
    return data, out


def _line(node: Any, key: Any) -> int:
    loc = node.loc(key) if hasattr(node, "loc") else None
    return loc[1] if loc else 1


def load_arch_file(path: str | Path) -> ArchConfig:
    """Read an ArchConfig YAML file; errors name the file, the line and the dotted path inside it.

    ``FILE#ENTRY`` picks one architecture of a collection (a search's ``pareto.yaml``; ENTRY is the trial
    number); a collection of exactly one entry needs no ``#ENTRY``."""
    ref, entry = split_ref(str(path))
    data, entries = _arch_file(ref)
    if entries is None:
        if entry is not None:
            raise MixnasError(f"{ref}: #{entry}: this file holds one ArchConfig, not a collection")
        if not isinstance(data, dict):
            what = "nothing" if data is None else "a list" if isinstance(data, list) else type(data).__name__
            raise MixnasError(f"{ref}:1: expected a mapping describing an ArchConfig (layout, input, stem, stages, "
                              f"head, ...), found {what}")
        return arch_from_data(data, ref)
    labels = [label for label, _, _ in entries]
    if entry is None:
        if len(entries) == 1:
            return entries[0][1]
        raise MixnasError(f"{ref}: holds {len(entries)} architectures (trials {', '.join(labels[:20]) or 'none'}"
                          f"{', ...' if len(labels) > 20 else ''}); "
                          f"pick one as {ref}#TRIAL")
    for label, arch, _ in entries:
        if label == entry:
            return arch
    raise MixnasError(f"{ref}: no entry #{entry}; entries: {', '.join(labels[:20]) or 'none'}"
                      f"{', ...' if len(labels) > 20 else ''}")


def resolve_arch(ref: str | ArchConfig, *, image_size: int | None = None, in_channels: int | None = None,
                 num_classes: int | None = None) -> ArchConfig:
    """The ArchConfig for a model name or YAML path, with the task (input size, channels, classes) overridden."""
    if isinstance(ref, ArchConfig):
        arch, label = ref, ref.name or "architecture"
    elif looks_like_file(ref):
        arch, label = load_arch_file(ref), ref
    else:
        model = get_named_model(ref)
        task = {k: v for k, v in {"image_size": image_size, "in_channels": in_channels,
                                  "num_classes": num_classes}.items() if v is not None}
        try:
            return model.make(**task)
        except ArchError as err:
            raise ArchError(f"{ref}: {err.path}", err.message) from None
    try:
        return arch.with_task(image_size, in_channels, num_classes)
    except ArchError as err:
        raise ArchError(f"{label}: {err.path}", err.message) from None


def create_model(name: str | ArchConfig, *, seed: int = 0, image_size: int | None = None,
                 in_channels: int | None = None, num_classes: int | None = None) -> nn.Module:
    """Build a named model (or an ArchConfig / YAML file) for the given task, initialised from ``seed``."""
    arch = resolve_arch(name, image_size=image_size, in_channels=in_channels, num_classes=num_classes)
    return build_model(arch, seed=seed)
