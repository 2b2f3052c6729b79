"""The frozen architecture configuration: the only thing passed from search to model building.

An :class:`ArchConfig` is a tree of frozen dataclasses. Constructing one validates it and resolves every
mixer parameter to an explicit value (defaults filled in from the mixer registry), so

* an impossible architecture cannot exist as an ``ArchConfig`` (the error names the dotted path);
* two configs that build the same network are equal and have the same :meth:`ArchConfig.digest`,
  whether or not defaults were spelled out;
* ``to_dict`` / ``from_dict`` and the YAML form round-trip exactly.

Layouts:

``isotropic``
    MLP-Mixer / ViT: a patch stem, then blocks at one resolution and one width (one or more stages, none
    downsampling).
``pyramid``
    Swin-style stages: a patch stem, then each later stage is entered by a downsampling layer that halves
    the grid and changes the width (``downsample``: ``conv2x2``, a 2x2 stride-2 patch-merging convolution
    without bias; ``conv2x2_bias`` with one, as in ViP; ``cross_scale``, RaftMLP's cross-scale MLP
    embedding; ``merge2x2``, Swin / AS-MLP patch merging: the 2x2 neighbours concatenated, normalised with
    the stage's norm over ``4C``, then a linear map without bias; ``conv3x3``, Hire-MLP's 3x3 stride-2
    convolution with bias, BatchNorm and ReLU). ``cross_stage_fusion`` adds Strip-MLP's grouped 2x2
    convolutions that carry each merged stage input forward to every later stage input.

Fields added after the first release (``StemSpec.kind`` / ``kernel_size`` / ``padding`` / ``act``,
``StageSpec.layer_scale`` / ``token_norm``) are left out of :meth:`ArchConfig.to_dict` while they hold their
defaults, so the canonical form, and every digest, of an architecture that does not use them is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from mixnas.errors import ArchError, did_you_mean
from mixnas.registry import MixerContext, get_mixer

LAYOUTS = ("isotropic", "pyramid")
NORMS = ("layernorm", "batchnorm", "none", "affine", "groupnorm")  # groupnorm: one group (AS-MLP)
DOWNSAMPLES = ("none", "conv2x2", "conv2x2_bias", "cross_scale", "merge2x2", "conv3x3")
STEMS = ("conv", "cross_scale")
STEM_ACTS = ("none", "relu")
TOKEN_NORMS = ("same",) + NORMS
POOLS = ("mean", "cls")
POS_EMBEDS = ("none", "learned")
# The end of an unknown-mixer message: how a mixer of one's own is made known (mixnas.plugins).
OWN_MIXER = " (a mixer of your own: load its file with `plugins: [FILE.py]` or --plugin FILE.py)"
# The largest value of each integer field (the space language's bounds where it has them): a file is
# untrusted input, and an integer past these builds nothing a machine can hold (or overflows torch's C types).
LIMITS = {"input.image_size": 4096, "input.in_channels": 1024, "input.num_classes": 1_000_000,
          "stem.patch_size": 1024, "stem.dim": 8192, "stem.kernel_size": 1024, "stem.padding": 1024,
          "depth": 64, "dim": 8192}
# Field metadata: ``choices`` lists a text field's values, ``min`` / ``max`` bound a number where the space
# language's domains are checked against other bounds than its defaults (an integer from 1 to its LIMITS
# entry, a float from 0); ``omit_default`` leaves a later field out of ``to_dict`` while it holds its default.
# The space language (mixnas/space.py) reads its keys, defaults and checks from these fields.


@dataclass(frozen=True)
class MixerSpec:
    """A mixer family name and its parameters (a sorted tuple of pairs, so the spec is hashable)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **params: Any) -> MixerSpec:
        return cls(name, tuple(sorted(params.items())))

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.params)}


@dataclass(frozen=True)
class InputSpec:
    """The task's input: square image size, channels, and number of classes."""

    image_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000


@dataclass(frozen=True)
class StemSpec:
    """Patch embedding: a stride-``patch_size`` convolution to ``dim``, then ``norm``, then ``act``.

    The kernel is ``patch_size`` wide (non-overlapping patches) unless ``kernel_size`` is set (an
    overlapping stem, e.g. Hire-MLP's 7x7 stride-4 convolution with ``padding`` 2, BatchNorm and ReLU).
    """

    patch_size: int = 16
    dim: int = 768
    bias: bool = True
    norm: str = field(default="none", metadata={"choices": NORMS})
    # conv, or cross_scale: RaftMLP's cross-scale MLP embedding (kernels patch and 2 x patch)
    kind: str = field(default="conv", metadata={"omit_default": True, "choices": STEMS})
    kernel_size: int = field(default=0, metadata={"omit_default": True, "min": 0})  # 0: the patch size
    padding: int = field(default=0, metadata={"omit_default": True, "min": 0})
    act: str = field(default="none", metadata={"omit_default": True, "choices": STEM_ACTS})

    @property
    def kernel(self) -> int:
        return self.kernel_size or self.patch_size

    def out_side(self, image_size: int) -> int:
        """The side of the token grid this stem makes of an ``image_size`` square."""
        return (image_size + 2 * self.padding - self.kernel) // self.patch_size + 1


@dataclass(frozen=True)
class StageSpec:
    """``depth`` blocks of width ``dim``: ``x + token_mixer(norm(x))`` then ``x + channel_mixer(norm(x))``.

    ``token_norm`` other than ``same`` replaces ``norm`` before the token mixer only (sMLPNet: ``none``,
    its token mixer starts with its own BatchNorm; LayerNorm before the channel mixer).
    """

    depth: int
    dim: int
    token_mixer: MixerSpec
    channel_mixer: MixerSpec
    downsample: str = field(default="none", metadata={"choices": DOWNSAMPLES})
    norm: str = field(default="layernorm", metadata={"choices": NORMS})
    drop_path: float = field(default=0.0, metadata={"max": 0.99})
    # initial per-channel scale of both residual branches (ResMLP, CaiT); 0: none
    layer_scale: float = field(default=0.0, metadata={"omit_default": True, "max": 1e6})
    token_norm: str = field(default="same", metadata={"omit_default": True, "choices": TOKEN_NORMS})

    @property
    def token_mixer_norm(self) -> str:
        return self.norm if self.token_norm == "same" else self.token_norm


@dataclass(frozen=True)
class HeadSpec:
    """Final norm, pooling (mean over tokens or the class token), dropout and a linear classifier."""

    norm: str = field(default="layernorm", metadata={"choices": NORMS})
    pool: str = field(default="mean", metadata={"choices": POOLS})
    dropout: float = field(default=0.0, metadata={"max": 0.99})


@dataclass(frozen=True)
class ArchConfig:
    """A complete, validated, canonical vision-MLP architecture."""

    stages: tuple[StageSpec, ...]
    input: InputSpec = field(default_factory=InputSpec)
    stem: StemSpec = field(default_factory=StemSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    layout: str = field(default="isotropic", metadata={"choices": LAYOUTS})
    class_token: bool = False
    pos_embed: str = field(default="none", metadata={"choices": POS_EMBEDS})
    cross_stage_fusion: bool = False
    name: str = field(default="", compare=False)  # a label: not part of equality or the digest

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        _validate(self)
        # ``dropout: 0`` and ``dropout: 0.0`` are equal; store a float so they also share one digest.
        object.__setattr__(self, "head", replace(self.head, dropout=float(self.head.dropout)))
        object.__setattr__(self, "stages", tuple(_resolve_stage(self, i) for i in range(len(self.stages))))

    # -- geometry ---------------------------------------------------------------------------------------
    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.class_token else 0

    def grids(self) -> list[tuple[int, int]]:
        """The (H, W) token grid of every stage."""
        side = self.stem.out_side(self.input.image_size)
        out = []
        for stage in self.stages:
            if stage.downsample != "none":
                side //= 2
            out.append((side, side))
        return out

    def contexts(self) -> list[MixerContext]:
        return [MixerContext(s.dim, g, self.num_prefix_tokens, i)
                for i, (s, g) in enumerate(zip(self.stages, self.grids()))]

    @property
    def depth(self) -> int:
        return sum(s.depth for s in self.stages)

    # -- serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layout": self.layout,
            "input": _plain(self.input),
            "stem": _plain(self.stem),
            "stages": [{**_plain(s), "token_mixer": s.token_mixer.to_dict(),
                        "channel_mixer": s.channel_mixer.to_dict()} for s in self.stages],
            "head": _plain(self.head),
            "class_token": self.class_token,
            "pos_embed": self.pos_embed,
            "cross_stage_fusion": self.cross_stage_fusion,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> ArchConfig:
        """Build from a plain mapping; unknown keys and bad types raise an error naming the path."""
        return _from_dict(data, where)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, where: str = "") -> ArchConfig:
        """Parse an ArchConfig YAML document (safely: :mod:`mixnas.yamlio`); a mistake names ``where``, the
        line and the dotted path: ``my_arch.yaml:7: stages[0].token_mixer.num_heads: ...``. A top-level
        ``plugins:`` list (what mixnas writes atop an architecture while plugins are loaded) is loaded first:
        paths relative to the folder of ``where`` when it names a file, else to the working directory."""
        from mixnas.plugins import load_and_drop_plugins
        from mixnas.yamlio import loads_located

        data = load_and_drop_plugins(loads_located(text, where or "<yaml>"))
        return arch_from_data(data, where or "<yaml>")

    def digest(self) -> str:
        """A stable 16-hex-digit hash of the architecture (the ``name`` label is not part of it)."""
        data = self.to_dict()
        data.pop("name")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_task(self, image_size: int | None = None, in_channels: int | None = None,
                  num_classes: int | None = None) -> ArchConfig:
        """The same architecture for another input size / channel count / class count."""
        task = replace(self.input, **{k: v for k, v in {"image_size": image_size, "in_channels": in_channels,
                                                         "num_classes": num_classes}.items() if v is not None})
        return replace(self, input=task)

    def with_name(self, name: str) -> ArchConfig:
        """The same architecture under another label (the digest does not change)."""
        return replace(self, name=name)


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)
            if f.name not in ("token_mixer", "channel_mixer")
            and not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}


# -- validation -------------------------------------------------------------------------------------------


def _check_int(value: Any, path: str, minimum: int = 1, limit: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchError(path, f"expected an integer, found {_brief(value)}")
    if value < minimum:
        raise ArchError(path, f"must be at least {minimum}, found {value}")
    maximum = LIMITS[limit or path]
    if value > maximum:
        raise ArchError(path, f"must be at most {maximum}, found {_brief(value)}")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__})"


def _check_choice(value: Any, path: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ArchError(path, f"{_brief(value)} is not allowed{did_you_mean(value, allowed)}; "
                              f"allowed: {', '.join(allowed)}")


def _check_bool(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise ArchError(path, f"expected true or false, found {_brief(value)}")


def _check_rate(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ArchError(path, f"expected a rate in [0, 1), found {_brief(value)}")


def _validate(arch: ArchConfig) -> None:
    inp, stem = arch.input, arch.stem
    _check_int(inp.image_size, "input.image_size")
    _check_int(inp.in_channels, "input.in_channels")
    _check_int(inp.num_classes, "input.num_classes")
    _check_int(stem.patch_size, "stem.patch_size")
    _check_int(stem.dim, "stem.dim")
    _check_bool(stem.bias, "stem.bias")
    _check_choice(stem.norm, "stem.norm", NORMS)
    _check_choice(stem.kind, "stem.kind", STEMS)
    _check_int(stem.kernel_size, "stem.kernel_size", minimum=0)
    _check_int(stem.padding, "stem.padding", minimum=0)
    _check_choice(stem.act, "stem.act", STEM_ACTS)
    _check_bool(arch.class_token, "class_token")
    _check_bool(arch.cross_stage_fusion, "cross_stage_fusion")
    if not isinstance(arch.name, str):
        raise ArchError("name", f"expected a string, found {_brief(arch.name)}")
    _check_choice(arch.layout, "layout", LAYOUTS)
    _check_choice(arch.pos_embed, "pos_embed", POS_EMBEDS)
    _check_choice(arch.head.norm, "head.norm", NORMS)
    _check_choice(arch.head.pool, "head.pool", POOLS)
    _check_rate(arch.head.dropout, "head.dropout")
    if not stem.kernel_size and inp.image_size % stem.patch_size:
        raise ArchError("stem.patch_size", f"patch size {stem.patch_size} does not divide the image size "
                                           f"{inp.image_size}")
    if stem.kind == "cross_scale" and stem.patch_size % 2:
        raise ArchError("stem.kind", f"the cross-scale stem centres a {2 * stem.patch_size}-wide window on each "
                                     f"patch: it needs an even patch size, found {stem.patch_size}")
    if stem.kind == "cross_scale" and (stem.kernel_size or stem.padding):
        raise ArchError("stem.kind", "the cross-scale stem sets its own kernels: leave kernel_size and padding out")
    if stem.kernel_size and stem.out_side(inp.image_size) < 1:
        raise ArchError("stem.kernel_size", f"a {stem.kernel_size}x{stem.kernel_size} kernel with padding "
                                            f"{stem.padding} does not fit a {inp.image_size}x{inp.image_size} image")
    if arch.head.pool == "cls" and not arch.class_token:
        raise ArchError("head.pool", "pool 'cls' needs class_token: true")
    if not arch.stages:
        raise ArchError("stages", "at least one stage is required")
    side = stem.out_side(inp.image_size)
    for i, stage in enumerate(arch.stages):
        path = f"stages[{i}]"
        _check_int(stage.depth, f"{path}.depth", limit="depth")
        _check_int(stage.dim, f"{path}.dim", limit="dim")
        _check_choice(stage.downsample, f"{path}.downsample", DOWNSAMPLES)
        _check_choice(stage.norm, f"{path}.norm", NORMS)
        _check_choice(stage.token_norm, f"{path}.token_norm", TOKEN_NORMS)
        _check_rate(stage.drop_path, f"{path}.drop_path")
        if (isinstance(stage.layer_scale, bool) or not isinstance(stage.layer_scale, (int, float))
                or not 0 <= stage.layer_scale <= 1e6):
            raise ArchError(f"{path}.layer_scale", f"expected a number from 0 to 1e6, found {_brief(stage.layer_scale)}")
        if arch.layout == "isotropic":
            if stage.downsample != "none":
                raise ArchError(f"{path}.downsample", "an isotropic layout keeps one resolution; use 'none' "
                                                      "or layout: pyramid")
            if stage.dim != stem.dim:
                raise ArchError(f"{path}.dim", f"an isotropic layout keeps one width: expected {stem.dim} "
                                               f"(stem.dim), found {stage.dim}")
        else:
            if i == 0 and stage.downsample != "none":
                raise ArchError(f"{path}.downsample", "the first pyramid stage follows the stem: use 'none'")
            if i == 0 and stage.dim != stem.dim:
                raise ArchError(f"{path}.dim", f"the first pyramid stage has the stem's width {stem.dim}, "
                                               f"found {stage.dim}")
            if i > 0 and stage.downsample == "none":
                raise ArchError(f"{path}.downsample", "later pyramid stages are entered by patch merging: "
                                                      f"use one of {', '.join(DOWNSAMPLES[1:])}")
            if stage.downsample != "none":
                if side % 2:
                    raise ArchError(f"{path}.downsample", f"cannot halve an odd {side}x{side} token grid; "
                                                          "use a larger image size or fewer stages")
                side //= 2
    if arch.class_token and arch.layout != "isotropic":
        raise ArchError("class_token", "a class token needs layout: isotropic")
    if arch.cross_stage_fusion:
        if arch.layout != "pyramid":
            raise ArchError("cross_stage_fusion", "cross-stage fusion needs layout: pyramid")
        for i in range(2, len(arch.stages)):
            if arch.stages[i].dim % arch.stages[i - 1].dim:
                raise ArchError(f"stages[{i}].dim", "cross-stage fusion uses grouped convolutions: the width "
                                                    f"must be a multiple of stages[{i - 1}].dim")


def _resolve_stage(arch: ArchConfig, i: int) -> StageSpec:
    stage = arch.stages[i]
    ctx = arch.contexts()[i]
    specs = {}
    for role, spec in (("token", stage.token_mixer), ("channel", stage.channel_mixer)):
        path = f"stages[{i}].{role}_mixer"
        if not isinstance(spec, MixerSpec):
            raise ArchError(path, f"expected a mixer spec, found {_brief(spec)}")
        family = get_mixer(role, spec.name) if _is_registered(role, spec.name) else None
        if family is None:
            from mixnas.registry import mixer_families

            names = mixer_families(role)
            raise ArchError(f"{path}.name", f"unknown {role} mixer {spec.name!r}"
                                            f"{did_you_mean(spec.name, names)}; allowed: {', '.join(sorted(names))}"
                                            f"{OWN_MIXER}")
        specs[role] = MixerSpec.of(spec.name, **family.resolve(spec.as_dict(), ctx, path))
    return replace(stage, token_mixer=specs["token"], channel_mixer=specs["channel"],
                   drop_path=float(stage.drop_path), layer_scale=float(stage.layer_scale))


def _is_registered(role: str, name: str) -> bool:
    from mixnas.registry import mixer_families

    return isinstance(name, str) and name in mixer_families(role)


# -- from_dict --------------------------------------------------------------------------------------------


def _section(cls: type, data: Any, path: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a mapping's keys against the dataclass ``cls`` and return them as keyword arguments."""
    if not isinstance(data, Mapping):
        raise ArchError(path, f"expected a mapping, found {type(data).__name__}")
    allowed = [f.name for f in fields(cls) if f.name not in exclude]
    for key in data:
        if key not in allowed:
            raise ArchError(f"{path}.{key}" if path else str(key),
                            f"unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    return dict(data)


def _mixer_from(data: Any, path: str) -> MixerSpec:
    if isinstance(data, str):
        return MixerSpec.of(data)
    if not isinstance(data, Mapping) or "name" not in data:
        raise ArchError(path, "expected a mixer name or a mapping with 'name' and its parameters")
    for key in data:
        if not isinstance(key, str):
            raise ArchError(f"{path}.{key}", "a mixer parameter name must be a string")
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k != "name"}
    return MixerSpec.of(data["name"], **params)


def _from_dict(data: Mapping[str, Any], where: str) -> ArchConfig:
    try:
        if not isinstance(data, Mapping):
            found = "nothing" if data is None else "a list" if isinstance(data, list) else type(data).__name__
            raise ArchError("", f"expected a mapping describing an ArchConfig, found {found}")
        top = _section(ArchConfig, data, "")
        if "stages" not in top:
            raise ArchError("stages", "missing: list the stages")
        stages_data = top.pop("stages")
        if not isinstance(stages_data, list):
            raise ArchError("stages", "expected a list of stages")
        stages = []
        for i, sd in enumerate(stages_data):
            path = f"stages[{i}]"
            kw = _section(StageSpec, sd, path)
            for req in ("depth", "dim", "token_mixer", "channel_mixer"):
                if req not in kw:
                    raise ArchError(f"{path}.{req}", "missing")
            kw["token_mixer"] = _mixer_from(kw["token_mixer"], f"{path}.token_mixer")
            kw["channel_mixer"] = _mixer_from(kw["channel_mixer"], f"{path}.channel_mixer")
            stages.append(StageSpec(**kw))
        for key, cls in (("input", InputSpec), ("stem", StemSpec), ("head", HeadSpec)):
            if key in top:
                top[key] = cls(**_section(cls, top[key], key))
        if top.get("name") is None:
            top["name"] = ""
        return ArchConfig(stages=tuple(stages), **top)
    except ArchError as err:
        if where:
            raise ArchError(f"{where}: {err.path}" if err.path else where, err.message) from None
        raise


def arch_from_data(data: Any, where: str, ypath: str = "") -> ArchConfig:
    """An ArchConfig from data read out of the file ``where`` (a :mod:`mixnas.yamlio` tree, whose lines are
    known) at the YAML path ``ypath`` within it: a mistake is reported as ``where:line: ypath.path: message``,
    the line being the deepest one of the path that the file spells out."""
    try:
        return _from_dict(data, "")
    except ArchError as err:
        line = line_of(data, err.path)
        full = ".".join(p for p in (ypath, err.path) if p).replace(".[", "[")
        place = f"{where}:{line}" if line else where
        raise ArchError(f"{place}: {full}" if full else place, err.message) from None


def line_of(data: Any, path: str) -> int | None:
    """The line of the dotted path ``stages[1].token_mixer.num_heads`` in a :mod:`mixnas.yamlio` tree: the
    deepest part of the path present in the file (a defaulted parameter points at its mixer)."""
    node, line = data, None
    start = getattr(data, "start", None)
    if start:
        line = start[1]
    for seg in re.findall(r"\[(\d+)\]|([^.\[\]]+)", path):
        key: Any = int(seg[0]) if seg[0] else seg[1]
        if isinstance(node, Mapping) and not isinstance(key, int) and key in node:
            pass
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            pass
        else:
            break
        loc = node.loc(key) if hasattr(node, "loc") else None
        if loc:
            line = loc[1]
        node = node[key]
    return line
