"""Resolve what a user names (a registered model or an ArchConfig YAML file) into an ArchConfig or a model.

``create_model("strip_mlp_t", image_size=32, num_classes=10)`` is the timm-style one-liner; everything
below it goes through :class:`~mixnas.config.ArchConfig`, so overriding the task re-validates the whole
architecture (an image size the patch size does not divide is an :class:`~mixnas.errors.ArchError`).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mixnas.config import ArchConfig
from mixnas.errors import ArchError, MixnasError
from mixnas.network import build_model
from mixnas.registry import get_named_model

YAML_SUFFIXES = (".yaml", ".yml")


def looks_like_file(ref: str) -> bool:
    return ref.endswith(YAML_SUFFIXES) or "/" in ref or Path(ref).is_file()


def load_arch_file(path: str | Path) -> ArchConfig:
    """Read an ArchConfig YAML file; errors name the file and the dotted path inside it."""
    path = Path(path)
    if not path.is_file():
        raise MixnasError(f"{path}: no such architecture file")
    return ArchConfig.from_yaml(path.read_text(), where=str(path))


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
