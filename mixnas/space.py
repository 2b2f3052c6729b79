"""The search-space language: composable YAML files that generate valid, buildable ArchConfigs.

A space file has six top-level keys (all but ``arch`` optional)::

    name: strip_mlp                    # defaults to the file name
    extends: base.yaml                 # deep-merge this file over another space (composition)
    plugins: [my_mixer.py]             # modules that register mixers (mixnas.plugins), loaded first
    task: {dataset: fashion-mnist, image_size: 32, in_channels: 1, num_classes: 10,
           objectives: [top1:max, macs:min], train: {epochs: 3}}
    constraints: {max_params: 2M, max_macs: 150M, max_latency_ms: 5,
                  latency: {device: cpu, batch_size: 1, threads: 1}}
    arch:
      layout: pyramid
      stem: {patch_size: {choice: [2, 4]}, dim: {choice: [32, 48, 64]}, bias: false}
      head: {norm: batchnorm, pool: mean}
      cross_stage_fusion: true
      stages:
        count: 4
        depth: {int: [1, 4]}            # a domain: one parameter per stage (or one for all: tie)
        dim: {rule: double}             # width rule: stem.dim * 2**i (also: same, {multipliers: [...]})
        norm: none
        token_mixer:                    # family -> its parameters; several families = a choice
          strip: {strip_width: {choice: [1, 3, 5, 7]}, arrangement: {choice: [cascade, parallel]}}
        channel_mixer:
          grn: {channel_hidden_dim: {ratio: {choice: [2, 3, 4]}}}   # ratio: times the stage width
        tie: [token_mixer, channel_mixer]   # fields sampled once and reused by every stage (default)

Domains: a plain value (fixed), ``{choice: [...]}``, ``{int: [low, high], step: s, log: bool}``,
``{float: [low, high], log: bool}``, and ``{ratio: domain}`` for widths relative to the stage width.
A per-stage field may also be a list with one entry per stage. Nothing the user writes is evaluated.

The keys of ``arch``, ``arch.stem``, ``arch.head`` and ``arch.stages`` (and the task's input sizes) are the
fields of the ArchConfig dataclasses (mixnas/config.py), with their defaults, types and allowed values:
``stem: {kind: {choice: [conv, cross_scale]}}`` or ``stages: {layer_scale: {choice: [0.0, 1.0e-4]}}`` search
options added after the first release as any other.

Every Optuna parameter is named by its YAML path (``arch.stages.token_mixer.strip.strip_width``,
``arch.stages[2].depth``), so branches never share a name and ``FixedTrial(params)`` replays a trial.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

from mixnas.config import LIMITS, OWN_MIXER, ArchConfig, InputSpec, MixerSpec, StageSpec
from mixnas.errors import ArchError, MixnasError, did_you_mean
from mixnas.plugins import plugin_ref, yaml_plugins
from mixnas.registry import MixerContext, MixerFamily, Param, mixer_families
from mixnas.util import parse_si
from mixnas.vocab import DIRECTIONS as OBJECTIVES  # the metrics a search's trials report, by direction
from mixnas.yamlio import Loc, LocatedError, LocDict, LocList, load_extended

TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "label_smoothing", "fraction",
              "bf16", "max_minutes", "grad_clip", "val_fraction", "adamw")
DEFAULT_TIE = ("token_mixer", "channel_mixer")

# -- the keys of the language, read from the ArchConfig dataclasses ----------------------------------------
# Every field of a config part is a key of its section (arch.stem, arch.head, arch.stages, arch itself; the
# input's fields are task keys), with the field's default and type, and the values its metadata allows
# (mixnas/config.py): an option added to ArchConfig is searchable by construction.


@cache
def field_kinds(cls: type) -> dict[str, type]:
    """The resolved type of each field of a config dataclass (``str``, ``int``, ``MixerSpec``, ...)."""
    return get_type_hints(cls)


def _scalar_fields(cls: type) -> list[Field]:
    """The fields holding one plain value (the ``name`` label, which is no part of equality, left out)."""
    kinds = field_kinds(cls)
    return [f for f in fields(cls) if kinds[f.name] in (bool, int, float, str) and f.compare]


# arch's sections with keys of their own; the input is the task's (task.image_size, ...)
SECTIONS = tuple(f.name for f in fields(ArchConfig) if is_dataclass(field_kinds(ArchConfig)[f.name])
                 and f.name != "input")
ARCH_SCALARS = tuple(f.name for f in _scalar_fields(ArchConfig))
# layout first: it decides the stages' defaults
ARCH_KEYS = ("layout", *SECTIONS, *(k for k in ARCH_SCALARS if k != "layout"), "stages")
SECTION_KEYS = {part: tuple(f.name for f in fields(field_kinds(ArchConfig)[part])) for part in SECTIONS}
# the per-stage fields of the first release in the order seeded searches draw them (so their candidates stay
# the same), then every later StageSpec field in declaration order
_FIRST_STAGE_FIELDS = ("depth", "dim", "norm", "drop_path", "downsample", "token_mixer", "channel_mixer")
_STAGE_NAMES = tuple(f.name for f in fields(StageSpec))
STAGE_FIELDS = (tuple(n for n in _FIRST_STAGE_FIELDS if n in _STAGE_NAMES)
                + tuple(n for n in _STAGE_NAMES if n not in _FIRST_STAGE_FIELDS))


class InvalidCandidate(MixnasError):
    """A sampled architecture that breaks a validity rule; it is recorded, never trained."""

    def __init__(self, error: ArchError, params: Mapping[str, Any]):
        self.error, self.params = error, dict(params)
        super().__init__(f"invalid candidate: {error}")


# -- domains ----------------------------------------------------------------------------------------------


class Domain:
    """A set of values one parameter may take."""

    def suggest(self, trial: Any, name: str) -> Any:
        raise NotImplementedError

    def values(self) -> Sequence[Any] | None:
        """All values if the domain is finite (``None`` if continuous); an int range is a lazy ``range``."""
        raise NotImplementedError

    def count(self) -> int | None:
        """How many values the domain holds (``None`` if continuous)."""
        vals = self.values()
        return None if vals is None else len(vals)

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    @property
    def fixed(self) -> bool:
        return self.count() == 1

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(Domain):
    value: Any

    def suggest(self, trial: Any, name: str) -> Any:
        return self.value

    def values(self) -> tuple[Any, ...]:
        return (self.value,)

    def contains(self, value: Any) -> bool:
        return value == self.value

    def describe(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Choice(Domain):
    options: tuple[Any, ...]

    def suggest(self, trial: Any, name: str) -> Any:
        return self.options[0] if len(self.options) == 1 else trial.suggest_categorical(name, list(self.options))

    def values(self) -> tuple[Any, ...]:
        return self.options

    def contains(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) or (value == o and not isinstance(o, bool))
                   for o in self.options)

    def describe(self) -> str:
        return "choice " + "|".join(map(str, self.options))


@dataclass(frozen=True)
class IntRange(Domain):
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: Any, name: str) -> Any:
        if self.low == self.high:
            return self.low
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def values(self) -> range:
        return range(self.low, self.high + 1, self.step)

    def count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)

    def describe(self) -> str:
        extra = (f" step {self.step}" if self.step != 1 else "") + (" log" if self.log else "")
        return f"int [{self.low}, {self.high}]{extra}"


@dataclass(frozen=True)
class FloatRange(Domain):
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def values(self) -> None:
        return None

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def describe(self) -> str:
        return f"float [{self.low}, {self.high}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Slot:
    """A named parameter of the space: its Optuna name, its domain, and where it was written."""

    name: str
    domain: Domain
    loc: Loc | None
    ratio: bool = False  # value = round(sampled * stage width)

    def draw(self, suggest: Callable[[str, Domain], Any], dim: int | None = None) -> Any:
        value = suggest(self.name, self.domain)
        if self.ratio:
            return max(1, int(round(value * dim)))
        return value

    def admits(self, value: Any, dim: int | None = None) -> bool:
        if not self.ratio:
            return self.domain.contains(value)
        vals = self.domain.values()
        if vals is not None:
            return any(max(1, int(round(v * dim))) == value for v in vals)
        return self.domain.contains(value / dim)


# -- parsing helpers --------------------------------------------------------------------------------------


class _Ctx:
    """Parsing state: the file, and every located YAML path for mapping errors back to lines."""

    def __init__(self) -> None:
        self.locs: dict[str, Loc] = {}

    def fail(self, loc: Loc | None, path: str, message: str) -> LocatedError:
        return LocatedError(loc, path, message)


def _loc(container: Any, key: Any) -> Loc | None:
    return container.loc(key) if isinstance(container, (LocDict, LocList)) else None


def _check_keys(ctx: _Ctx, data: Any, path: str, allowed: tuple[str, ...], loc: Loc | None) -> LocDict:
    if not isinstance(data, Mapping):
        raise ctx.fail(loc, path, f"expected a mapping, found {_kind(data)}")
    for key in data:
        if key not in allowed:
            raise ctx.fail(_loc(data, key), f"{path}.{key}" if path else str(key),
                           f"unknown key{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")
        ctx.locs[f"{path}.{key}" if path else str(key)] = _loc(data, key)
    return data if isinstance(data, LocDict) else LocDict(data)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", LocDict: "a mapping", list: "a list", LocList: "a list", str: f"the text {value!r}",
            bool: f"the boolean {value}"}.get(type(value), f"{type(value).__name__} {value!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


DOMAIN_KEYS = ("choice", "int", "float", "ratio", "step", "log", "value")
MAX_INT_VALUES = 1_000_000  # an int range lists its values lazily, but grids and probes walk them


def _parse_domain(ctx: _Ctx, raw: Any, path: str, loc: Loc | None, check: Callable[[Any, str], Any] | None,
                  kind: type | None = None) -> tuple[Domain, bool]:
    """Parse a domain and check its values with ``check(value, path)``; returns (domain, is_ratio)."""
    if isinstance(raw, Mapping):
        head = _domain_head(ctx, raw, path, loc)
        hloc = _loc(raw, head)
        if head == "ratio":
            return _ratio_domain(ctx, raw["ratio"], path, hloc, kind), True
        if head == "value":
            return _checked(ctx, Fixed(raw["value"]), path, hloc, check), False
        if head == "choice":
            return _checked(ctx, _choice_domain(ctx, raw["choice"], path, hloc), path, hloc, check), False
        return _checked(ctx, _range_domain(ctx, raw, head, path, hloc, kind), path, hloc, check), False
    if isinstance(raw, list):
        raise ctx.fail(loc, path, "a list is not a domain; write {choice: [...]}")
    return _checked(ctx, Fixed(raw), path, loc, check), False


def _domain_head(ctx: _Ctx, raw: Mapping, path: str, loc: Loc | None) -> str:
    """The one key that says what a domain mapping is (choice, int, float, ratio or value); ``step`` and
    ``log`` only where they mean something."""
    keys = set(raw)
    bad = keys - set(DOMAIN_KEYS)
    if bad:
        key = sorted(bad, key=str)[0]
        raise ctx.fail(_loc(raw, key), f"{path}.{key}",
                       f"unknown domain key{did_you_mean(str(key), DOMAIN_KEYS)}; a domain is a value, "
                       "{choice: [...]}, {int: [low, high], step, log}, {float: [low, high], log} or "
                       "{ratio: domain}")
    heads = keys & {"choice", "int", "float", "ratio", "value"}
    if len(heads) != 1:
        raise ctx.fail(loc, path, "a domain needs exactly one of choice, int, float, ratio, value; found "
                       + (", ".join(sorted(heads)) or "none"))
    head = heads.pop()
    if head != "int" and "step" in raw:
        raise ctx.fail(_loc(raw, "step"), f"{path}.step", "step is allowed with int ranges only")
    if head not in ("int", "float") and "log" in raw:
        raise ctx.fail(_loc(raw, "log"), f"{path}.log", "log is allowed with int and float ranges only")
    return head


def _ratio_domain(ctx: _Ctx, raw: Any, path: str, hloc: Loc | None, kind: type | None) -> Domain:
    """``{ratio: domain}``: positive multiples of the stage width, for integer widths only."""
    inner, _ = _parse_domain(ctx, raw, f"{path}.ratio", hloc, None)
    vals = inner.values()
    for v in vals or ((inner.low, inner.high) if isinstance(inner, FloatRange) else ()):
        if not _is_number(v) or v <= 0:
            raise ctx.fail(hloc, f"{path}.ratio", f"a width ratio must be a positive number, found {v!r}")
    if kind is not None and kind is not int:
        raise ctx.fail(hloc, f"{path}.ratio", "ratio applies to integer widths only")
    return inner


def _choice_domain(ctx: _Ctx, opts: Any, path: str, hloc: Loc | None) -> Choice:
    """``{choice: [...]}``: distinct plain values."""
    if not isinstance(opts, list):
        raise ctx.fail(hloc, f"{path}.choice", f"expected a list of options, found {_kind(opts)}")
    if not opts:
        raise ctx.fail(hloc, f"{path}.choice", "empty choice: list at least one option")
    for i, o in enumerate(opts):
        if isinstance(o, (Mapping, list)):
            raise ctx.fail(_loc(opts, i) or hloc, f"{path}.choice[{i}]",
                           f"options must be plain values, found {_kind(o)}")
    if len(set(map(repr, opts))) != len(opts):
        raise ctx.fail(hloc, f"{path}.choice", "duplicate options")
    return Choice(tuple(opts))


def _range_domain(ctx: _Ctx, raw: Mapping, head: str, path: str, hloc: Loc | None, kind: type | None) -> Domain:
    """``{int: [low, high], step, log}`` or ``{float: [low, high], log}``: a non-empty range, a log range above
    0, and no more int values than a grid or a probe can walk."""
    bounds = raw[head]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ctx.fail(hloc, f"{path}.{head}", f"expected [low, high], found {_kind(bounds)}")
    low, high = bounds
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ctx.fail(_loc(raw, "log"), f"{path}.log", f"expected true or false, found {_kind(log)}")
    dom = _int_range(ctx, raw, path, hloc, low, high, log) if head == "int" else \
        _float_range(ctx, path, hloc, low, high, log, kind)
    if low > high:
        raise ctx.fail(hloc, f"{path}.{head}", f"empty range: low {low} is above high {high}")
    if log and low <= 0:
        raise ctx.fail(hloc, f"{path}.{head}", f"a log range needs low > 0, found {low}")
    if isinstance(dom, IntRange) and (high - low) % dom.step:
        raise ctx.fail(hloc, f"{path}.{head}", f"high - low ({high - low}) is not a multiple of step {dom.step}")
    if isinstance(dom, IntRange) and dom.count() > MAX_INT_VALUES:
        raise ctx.fail(hloc, f"{path}.{head}", f"the range holds {dom.count():,} values; allowed: at most "
                                               f"{MAX_INT_VALUES:,} (use a step, or log: true over a smaller range)")
    return dom


def _int_range(ctx: _Ctx, raw: Mapping, path: str, hloc: Loc | None, low: Any, high: Any, log: bool) -> IntRange:
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in (low, high)):
        raise ctx.fail(hloc, f"{path}.int", f"int bounds must be integers, found {low!r}, {high!r}")
    step = raw.get("step", 1)
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise ctx.fail(_loc(raw, "step"), f"{path}.step", f"step must be a positive integer, found {step!r}")
    if log and step != 1:
        raise ctx.fail(_loc(raw, "step"), f"{path}.step", "a log range needs step 1")
    return IntRange(low, high, step, log)


def _float_range(ctx: _Ctx, path: str, hloc: Loc | None, low: Any, high: Any, log: bool,
                 kind: type | None) -> FloatRange:
    if not all(_is_number(b) for b in (low, high)):
        raise ctx.fail(hloc, f"{path}.float", f"float bounds must be numbers, found {low!r}, {high!r}")
    if kind is int:
        raise ctx.fail(hloc, f"{path}.float", "this parameter takes integers: use int: [low, high]")
    return FloatRange(float(low), float(high), log)


def _checked(ctx: _Ctx, dom: Domain, path: str, loc: Loc | None, check: Callable | None) -> Domain:
    if check is None:
        return dom
    vals = dom.values()
    probes = vals if vals is not None and (len(vals) <= 1000 or not isinstance(dom, IntRange)) else (dom.low, dom.high)
    for v in probes:
        try:
            check(v, path)
        except ArchError as err:
            raise ctx.fail(loc, path, err.message) from None
        except LocatedError:
            raise
    return dom


def _param_check(param: Param) -> Callable[[Any, str], Any]:
    def check(value: Any, path: str) -> Any:
        return param.check(value, path)

    return check


def _choice_check(allowed: tuple[str, ...]) -> Callable[[Any, str], Any]:
    def check(value: Any, path: str) -> Any:
        if value not in allowed:
            raise ArchError(path, f"{value!r} is not allowed{did_you_mean(str(value), allowed)}; "
                                  f"allowed: {', '.join(allowed)}")
        return value

    return check


def _type_check(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable:
    return _param_check(Param("_", kind, None, min=minimum, max=maximum))


def _field_check(key: str, f: Field, kind: type) -> Callable[[Any, str], Any]:
    """What a value of the config field ``f`` (ArchConfig path ``key``: ``stem.dim``, ``depth``) must be: one of
    its ``choices``, or of its type within its bounds (an integer from 1 to its :data:`LIMITS` entry, a float
    from 0, unless the field's metadata names other ``min`` / ``max``)."""
    if "choices" in f.metadata:
        return _choice_check(f.metadata["choices"])
    if kind is int:
        return _type_check(int, f.metadata.get("min", 1), f.metadata.get("max", LIMITS.get(key)))
    if kind is float:
        return _type_check(float, f.metadata.get("min", 0.0), f.metadata.get("max"))
    return _type_check(kind)


# -- the space --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


@dataclass(frozen=True)
class Task:
    dataset: str = "fashion-mnist"
    image_size: int = 32
    in_channels: int = 1
    num_classes: int = 10
    objectives: tuple[Objective, ...] = (Objective("top1", "max"), Objective("macs", "min"))
    train: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Constraints:
    max_params: float | None = None
    max_macs: float | None = None
    max_latency_ms: float | None = None
    latency_device: str = "cpu"
    latency_batch_size: int = 1
    latency_threads: int | None = 1

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.max_params, self.max_macs, self.max_latency_ms))


@dataclass
class MixerNode:
    """A token or channel mixer: one branch per family, each with its parameter slots."""

    role: str
    path: str
    family_slot: Slot | None
    branches: dict[str, dict[str, Slot]]
    loc: Loc | None

    def draw(self, suggest: Callable, dim: int) -> MixerSpec:
        family = self.family_slot.draw(suggest) if self.family_slot else next(iter(self.branches))
        params = {k: s.draw(suggest, dim) for k, s in self.branches[family].items()}
        return MixerSpec.of(family, **params)

    def slots(self) -> list[Slot]:
        out = [self.family_slot] if self.family_slot else []
        for branch in self.branches.values():
            out += branch.values()
        return out

    def size(self) -> int | None:
        total = 0
        for branch in self.branches.values():
            sizes = [_slot_size(s) for s in branch.values()]
            if None in sizes:
                return None
            total += math.prod(sizes)
        return total


def _one_value_per_name(suggest: Callable[[str, Domain], Any]) -> Callable[[str, Domain], Any]:
    """``suggest``, asked once per parameter name within one build: a tied field's slot is drawn in every
    stage under one name, and Optuna's trial answers a repeated name with its first value; random draws, the
    grid and every other path without Optuna keep the same contract, so a tie holds for them too."""
    chosen: dict[str, Any] = {}

    def once(name: str, dom: Domain) -> Any:
        if name not in chosen:
            chosen[name] = suggest(name, dom)
        return chosen[name]

    return once


def _slot_size(slot: Slot) -> int | None:
    return slot.domain.count()


@dataclass
class StageField:
    """One per-stage field: either one slot for all stages (tied / fixed) or one slot per stage."""

    name: str
    per_stage: list[Any]  # Slot | MixerNode, one per stage (the same object repeated when tied)
    tied: bool

    def unique(self) -> list[Any]:
        return self.per_stage[:1] if self.tied else self.per_stage


@dataclass
class Space:
    """A parsed, validated search space over :class:`ArchConfig`."""

    name: str
    path: str
    task: Task
    constraints: Constraints
    layout: Slot
    globals_: dict[str, Slot]  # stem.*, head.*, and arch's other plain fields (class_token, ...) but layout
    count: int
    fields: dict[str, StageField]
    dim_rule: tuple[str, tuple[float, ...]] | None
    locs: dict[str, Loc] = field(default_factory=dict, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    plugins: tuple[str, ...] = ()  # the plugins it loaded (absolute file paths or module names; also in raw)

    # -- generation -----------------------------------------------------------------------------------
    def _build(self, suggest: Callable[[str, Domain], Any], task: InputSpec | None = None) -> ArchConfig:
        suggest = _one_value_per_name(suggest)
        g = {k: s.draw(suggest) for k, s in self.globals_.items()}
        layout = self.layout.draw(suggest)
        stages = tuple(self._build_stage(suggest, i, g["stem.dim"], layout) for i in range(self.count))
        inp = task or InputSpec(self.task.image_size, self.task.in_channels, self.task.num_classes)
        sections = {part: field_kinds(ArchConfig)[part](**_under(g, part)) for part in SECTIONS}
        top = {k: v for k, v in g.items() if "." not in k}
        return ArchConfig(stages=stages, input=inp, layout=layout, name=self.name, **sections, **top)

    def _build_stage(self, suggest: Callable[[str, Domain], Any], i: int, stem_dim: int, layout: str) -> StageSpec:
        """Stage ``i``: its width first (mixer widths may be ratios of it), then its fields in
        :data:`STAGE_FIELDS` order; a field the space leaves out keeps the StageSpec default."""
        if self.dim_rule is not None:
            rule, mult = self.dim_rule
            dim = int(stem_dim * (2 ** i if rule == "double" else 1 if rule == "same" else mult[i]))
        else:
            dim = self.fields["dim"].per_stage[i].draw(suggest)
        vals: dict[str, Any] = {"dim": dim}
        for name in STAGE_FIELDS:
            if name != "dim" and name in self.fields:
                vals[name] = self.fields[name].per_stage[i].draw(suggest, dim)
        vals.setdefault("downsample", "conv2x2" if layout == "pyramid" and i > 0 else "none")
        return StageSpec(**vals)

    def sample(self, trial: Any, task: InputSpec | None = None) -> ArchConfig:
        """Define-by-run sampling over an Optuna trial (or ``FixedTrial``); cheap: builds no model. The search
        samples through this very method, so a user's own Optuna objective that calls it asks for the same
        parameters (named by their YAML paths) over the same distributions. ``task``: the input to build for
        (default: the space's task; the search passes its dataset's).

        Raises :class:`InvalidCandidate` when the sampled values break a validity rule. Optuna fixes a trial's
        parameters once asked, so no other candidate can be drawn within that trial: the caller ends it (the
        search records it as PRUNED with ``status=invalid``; a user's objective raises ``optuna.TrialPruned``).
        """

        def suggest(name: str, dom: Domain) -> Any:
            return dom.suggest(trial, name)

        try:
            return self._build(suggest, task)
        except ArchError as err:
            raise InvalidCandidate(err, getattr(trial, "params", {})) from None

    def sample_random(self, rng: random.Random, task: InputSpec | None = None) -> tuple[dict, ArchConfig | None,
                                                                                         ArchError | None]:
        """Draw uniformly without Optuna (used for the eager validity probe)."""
        params: dict[str, Any] = {}

        def suggest(name: str, dom: Domain) -> Any:
            vals = dom.values()
            if vals is not None:
                v = vals[0] if len(vals) == 1 else rng.choice(vals)
            else:
                v = (math.exp(rng.uniform(math.log(dom.low), math.log(dom.high))) if dom.log
                     else rng.uniform(dom.low, dom.high))
            if vals is None or len(vals) > 1:
                params[name] = v
            return v

        try:
            return params, self._build(suggest, task), None
        except ArchError as err:
            return params, None, err

    # -- structure ------------------------------------------------------------------------------------
    def slots(self) -> list[Slot]:
        """Every slot, in sampling order, fixed ones included."""
        out = list(self.globals_.values()) + [self.layout]
        for f in self.fields.values():
            for node in f.unique():
                out += node.slots() if isinstance(node, MixerNode) else [node]
        return out

    def params(self) -> list[Slot]:
        """The searchable (non-fixed) slots."""
        return [s for s in self.slots() if not s.domain.fixed]

    def size(self) -> int | None:
        """Number of distinct parameter assignments (``None`` if any searched domain is continuous)."""
        total = 1
        for s in list(self.globals_.values()) + [self.layout]:
            n = _slot_size(s)
            if n is None:
                return None
            total *= n
        for f in self.fields.values():
            for node in f.unique():
                n = node.size() if isinstance(node, MixerNode) else _slot_size(node)
                if n is None:
                    return None
                total *= n
        return total

    def grid(self, fixed: Mapping[str, Any] | None = None, task: InputSpec | None = None,
             skip_invalid: bool = True) -> Iterator[ArchConfig]:
        """Enumerate every candidate of a discrete space (or of the sub-space where ``fixed`` params hold).

        Define-by-run enumeration: replay a prefix of choices, branch on the first new parameter.
        """
        fixed = dict(fixed or {})
        known = {s.name for s in self.slots()}
        for key in fixed:
            if key not in known:
                raise MixnasError(f"{self.path}: grid: unknown parameter {key!r}{did_you_mean(key, known)}")
        stack: list[list[Any]] = [[]]
        while stack:
            prefix = stack.pop()
            seen: list[tuple[str, tuple]] = []
            pos = [0]

            def suggest(name: str, dom: Domain, prefix=prefix, seen=seen, pos=pos) -> Any:
                if name in fixed:
                    return fixed[name]
                vals = dom.values()
                if vals is None:
                    raise MixnasError(f"{self.path}: grid: {name} is continuous ({dom.describe()}); fix it "
                                      "or use a discrete domain")
                if len(vals) == 1:
                    return vals[0]
                i = pos[0]
                pos[0] += 1
                if i < len(prefix):
                    return prefix[i]
                seen.append((name, vals))
                return vals[0]

            try:
                arch: ArchConfig | None = self._build(suggest, task)
            except ArchError:
                if not skip_invalid:
                    raise
                arch = None
            # branch: each newly seen parameter after the prefix spawns its alternatives
            for depth in range(len(seen) - 1, -1, -1):
                base = list(prefix) + [v[1][0] for v in seen[:depth]]
                for alt in reversed(seen[depth][1][1:]):
                    stack.append(base + [alt])
            if arch is not None:
                yield arch

    def contains(self, arch: ArchConfig) -> bool:
        """Whether some assignment of this space's parameters produces ``arch`` (names aside)."""
        try:
            params = self.params_of(arch)
        except _NotInSpace:
            return False
        from optuna.trial import FixedTrial

        try:
            return self.sample(FixedTrial(params), task=arch.input).digest() == arch.digest()
        except (InvalidCandidate, ValueError):
            return False

    def params_of(self, arch: ArchConfig) -> dict[str, Any]:
        """Recover the parameter assignment that produced ``arch`` (raises if it is not in the space)."""
        out: dict[str, Any] = {}

        def take(slot: Slot, value: Any, dim: int | None = None) -> None:
            if not slot.admits(value, dim):
                raise _NotInSpace(slot.name)
            if slot.domain.fixed:
                return
            raw = value
            if slot.ratio:
                vals = slot.domain.values()
                raw = (next(v for v in vals if max(1, int(round(v * dim))) == value) if vals is not None
                       else value / dim)
            if slot.name in out and out[slot.name] != raw:
                raise _NotInSpace(slot.name)
            out[slot.name] = raw

        if len(arch.stages) != self.count:
            raise _NotInSpace("arch.stages.count")
        take(self.layout, arch.layout)
        for key, slot in self.globals_.items():
            part, _, name = key.rpartition(".")
            take(slot, getattr(getattr(arch, part) if part else arch, name))
        for i, st in enumerate(arch.stages):
            for name, f in self.fields.items():
                node = f.per_stage[i]
                if isinstance(node, MixerNode):
                    spec = getattr(st, name)
                    if spec.name not in node.branches:
                        raise _NotInSpace(node.path)
                    if node.family_slot:
                        take(node.family_slot, spec.name)
                    for k, s in node.branches[spec.name].items():
                        take(s, spec[k], st.dim)
                else:
                    take(node, getattr(st, name), st.dim)
        return out


class _NotInSpace(Exception):
    pass


def _under(values: Mapping[str, Any], part: str) -> dict[str, Any]:
    """The values of one section (``stem.dim`` -> ``dim``)."""
    return {k[len(part) + 1:]: v for k, v in values.items() if k.startswith(f"{part}.")}


# -- loading ----------------------------------------------------------------------------------------------

TOP_KEYS = ("name", "description", "extends", "plugins", "task", "constraints", "arch")
STAGES_KEYS = ("count", "tie", *STAGE_FIELDS)
TASK_KEYS = ("dataset", *(f.name for f in fields(InputSpec)), "objectives", "train")
CONSTRAINT_KEYS = ("max_params", "max_macs", "max_latency_ms", "latency")
LATENCY_KEYS = ("device", "batch_size", "threads")


def _load_tree(path: Path) -> LocDict:
    return load_extended(path, "space", TOP_KEYS)


def _number(ctx: _Ctx, value: Any, path: str, loc: Loc | None) -> float:
    """A positive budget: a number, or text like '2M', '150M', '1.5e6', '3G'."""
    if isinstance(value, str):
        try:
            value = parse_si(value)
        except ValueError:
            raise ctx.fail(loc, path, f"expected a positive number such as 2000000, '2M' or '1.5e6', "
                                      f"found {value!r}") from None
    if not _is_number(value) or value <= 0 or math.isinf(value) or math.isnan(value):
        raise ctx.fail(loc, path, f"expected a positive number, found {value!r}")
    return float(value)


def _parse_task(ctx: _Ctx, raw: Any, loc: Loc | None) -> Task:
    data = _check_keys(ctx, raw if raw is not None else {}, "task", TASK_KEYS, loc)
    kw: dict[str, Any] = {}
    for key in ("image_size", "in_channels", "num_classes"):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ctx.fail(data.loc(key), f"task.{key}", f"expected a positive integer, found {v!r}")
            kw[key] = v
    if "dataset" in data:
        if not isinstance(data["dataset"], str):
            raise ctx.fail(data.loc("dataset"), "task.dataset", f"expected a dataset name, found {_kind(data['dataset'])}")
        kw["dataset"] = data["dataset"]
    if "objectives" in data:
        kw["objectives"] = parse_objectives(data["objectives"], lambda m: ctx.fail(data.loc("objectives"),
                                                                                   "task.objectives", m))
    if "train" in data:
        train = _check_keys(ctx, data["train"], "task.train", TRAIN_KEYS, data.loc("train"))
        for k, v in train.items():
            if not (isinstance(v, (int, float, bool, str)) or v is None):
                raise ctx.fail(train.loc(k), f"task.train.{k}", f"expected a plain value, found {_kind(v)}")
        kw["train"] = tuple(sorted(train.items()))
    return Task(**kw)


def parse_objectives(raw: Any, fail: Callable[[str], Exception]) -> tuple[Objective, ...]:
    """``[top1:max, macs:min]`` or ``"top1:max,macs:min"`` -> objectives (shared by the CLI)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise fail("expected a list such as [top1:max, macs:min]")
    out = []
    for item in items:
        if not isinstance(item, str) or ":" not in item:
            raise fail(f"an objective is 'metric:direction', found {item!r}")
        metric, direction = (p.strip() for p in item.split(":", 1))
        if metric not in OBJECTIVES:
            raise fail(f"unknown metric {metric!r}{did_you_mean(metric, OBJECTIVES)}; allowed: {', '.join(OBJECTIVES)}")
        if direction not in ("min", "max"):
            raise fail(f"direction of {metric} must be min or max, found {direction!r}")
        if direction != OBJECTIVES[metric]:
            raise fail(f"{metric} should be {OBJECTIVES[metric]}imised, found {direction!r}")
        if any(o.metric == metric for o in out):
            raise fail(f"objective {metric} listed twice")
        out.append(Objective(metric, direction))
    return tuple(out)


def _parse_constraints(ctx: _Ctx, raw: Any, loc: Loc | None) -> Constraints:
    data = _check_keys(ctx, raw if raw is not None else {}, "constraints", CONSTRAINT_KEYS, loc)
    kw: dict[str, Any] = {}
    for key in ("max_params", "max_macs", "max_latency_ms"):
        if key in data and data[key] is not None:
            kw[key] = _number(ctx, data[key], f"constraints.{key}", data.loc(key))
    if "latency" in data:
        lat = _check_keys(ctx, data["latency"], "constraints.latency", LATENCY_KEYS, data.loc("latency"))
        if "device" in lat:
            if lat["device"] not in ("cpu", "cuda"):
                raise ctx.fail(lat.loc("device"), "constraints.latency.device",
                               f"{lat['device']!r} is not allowed; allowed: cpu, cuda")
            kw["latency_device"] = lat["device"]
        for key in ("batch_size", "threads"):
            if key in lat:
                v = lat[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ctx.fail(lat.loc(key), f"constraints.latency.{key}",
                                   f"expected a positive integer, found {v!r}")
                kw[f"latency_{key}"] = v
    return Constraints(**kw)


def _slot(ctx: _Ctx, container: Any, key: str, path: str, default: Any, check: Callable | None,
          kind: type | None = None, ratio_ok: bool = False) -> Slot:
    if key not in container:
        return Slot(path, Fixed(default), None)
    loc = _loc(container, key)
    dom, ratio = _parse_domain(ctx, container[key], path, loc, None if check is None else check, kind)
    if ratio and not ratio_ok:
        raise ctx.fail(loc, path, "ratio is allowed for mixer widths only")
    ctx.locs[path] = loc
    return Slot(path, dom, loc, ratio)


def _field_slots(ctx: _Ctx, data: Any, cls: type, part: str, names: tuple[str, ...]) -> dict[str, Slot]:
    """A slot for each of the ``names`` fields of the config dataclass ``cls``, keyed by its ArchConfig path
    (``part.field``, or the field alone at the top), holding the field's default where the space is silent.
    A field added after the first release (``omit_default``) gets one only where the space writes it, so the
    parameters (and ``space check``) of a space that does not use it stay as they were."""
    kinds = field_kinds(cls)
    out = {}
    for f in fields(cls):
        if f.name not in names or (f.metadata.get("omit_default") and f.name not in data):
            continue
        key = f"{part}.{f.name}" if part else f.name
        out[key] = _slot(ctx, data, f.name, f"arch.{key}", f.default, _field_check(key, f, kinds[f.name]),
                         kinds[f.name])
    return out


def _mixer_node(ctx: _Ctx, raw: Any, role: str, path: str, loc: Loc | None, probe: MixerContext) -> MixerNode:
    families = mixer_families(role)
    if isinstance(raw, str):
        raw = LocDict({raw: None})
        raw.locs = {next(iter(raw)): loc}
    if not isinstance(raw, Mapping) or not raw:
        raise ctx.fail(loc, path, f"expected a mapping of {role}-mixer families to their parameters, e.g. "
                                  f"{{{next(iter(families))}: {{...}}}}; allowed families: {', '.join(families)}")
    branches: dict[str, dict[str, Slot]] = {}
    for fam_name, params in raw.items():
        floc = _loc(raw, fam_name)
        if fam_name not in families:
            raise ctx.fail(floc, f"{path}.{fam_name}", f"unknown {role} mixer{did_you_mean(str(fam_name), families)}; "
                                                       f"allowed: {', '.join(sorted(families))}{OWN_MIXER}")
        family: MixerFamily = families[fam_name]
        params = params if params is not None else {}
        if not isinstance(params, Mapping):
            raise ctx.fail(floc, f"{path}.{fam_name}", f"expected a mapping of {fam_name}'s parameters, found "
                                                       f"{_kind(params)}")
        slots = {}
        for pname in params:
            ppath = f"{path}.{fam_name}.{pname}"
            if pname not in family.param_names:
                raise ctx.fail(_loc(params, pname), ppath,
                               f"unknown parameter of {role} mixer {fam_name!r}{did_you_mean(str(pname), family.param_names)}; "
                               f"allowed: {', '.join(family.param_names)}")
            decl = family.param(pname)
            raw_value = params[pname]
            is_ratio = isinstance(raw_value, Mapping) and "ratio" in raw_value
            slots[pname] = _slot(ctx, params, pname, ppath, None, None if is_ratio else _param_check(decl),
                                 decl.kind, ratio_ok=decl.kind is int)
        branches[fam_name] = slots
        ctx.locs[f"{path}.{fam_name}"] = floc
    family_slot = None
    if len(branches) > 1:
        family_slot = Slot(path, Choice(tuple(branches)), loc)
    ctx.locs[path] = loc
    return MixerNode(role, path, family_slot, branches, loc)


def _parse_stages(ctx: _Ctx, raw: Any, loc: Loc | None, layout_default: str
                  ) -> tuple[int, dict[str, StageField], tuple[str, tuple[float, ...]] | None]:
    data = _check_keys(ctx, raw, "arch.stages", STAGES_KEYS, loc)
    count, tie = _stage_count_and_tie(ctx, data, layout_default)
    for req in ("depth", "token_mixer", "channel_mixer"):
        if req not in data:
            raise ctx.fail(data.start, f"arch.stages.{req}", "missing")
    dim_rule = _width_rule(ctx, data, count, layout_default)
    probe = MixerContext(64, (8, 8))
    specs = {f.name: f for f in fields(StageSpec)}
    stage_fields: dict[str, StageField] = {}
    for name in STAGE_FIELDS:
        if name not in data or (name == "dim" and dim_rule is not None):
            continue
        stage_fields[name] = _stage_field(ctx, data, specs[name], count, name in tie or count == 1, probe)
    return count, stage_fields, dim_rule


def _stage_count_and_tie(ctx: _Ctx, data: LocDict, layout_default: str) -> tuple[int, list[str]]:
    """``stages.count`` (default: 4 in a pyramid, else 1) and ``stages.tie`` (the fields sampled once)."""
    count = data.get("count", 4 if layout_default == "pyramid" else 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 8:
        raise ctx.fail(data.loc("count"), "arch.stages.count", f"expected an integer from 1 to 8, found {count!r}")
    tie = data.get("tie", list(DEFAULT_TIE))
    if not isinstance(tie, list) or any(t not in STAGE_FIELDS for t in tie):
        bad = next((t for t in (tie if isinstance(tie, list) else [tie]) if t not in STAGE_FIELDS), tie)
        raise ctx.fail(data.loc("tie"), "arch.stages.tie", f"{bad!r} is not a stage field{did_you_mean(str(bad), STAGE_FIELDS)}; "
                                                            f"allowed: {', '.join(STAGE_FIELDS)}")
    return count, tie


def _width_rule(ctx: _Ctx, data: LocDict, count: int, layout_default: str
                ) -> tuple[str, tuple[float, ...]] | None:
    """``stages.dim: {rule: ...}`` as (rule, multipliers); the layout's rule when ``dim`` is left out; None when
    the widths are searched (a domain)."""
    rawdim = data.get("dim")
    if rawdim is None:
        return ("same", ()) if layout_default != "pyramid" else ("double", ())
    if not (isinstance(rawdim, Mapping) and "rule" in rawdim):
        return None
    if set(rawdim) != {"rule"}:
        raise ctx.fail(data.loc("dim"), "arch.stages.dim", "a width rule is {rule: double}, {rule: same} or "
                                                           "{rule: {multipliers: [...]}} alone")
    rule = rawdim["rule"]
    rloc = _loc(rawdim, "rule")
    if rule in ("double", "same"):
        return (rule, ())
    if isinstance(rule, Mapping) and set(rule) == {"multipliers"}:
        mult = rule["multipliers"]
        if (not isinstance(mult, list) or len(mult) != count
                or not all(_is_number(m) and m > 0 for m in mult)):
            raise ctx.fail(rloc, "arch.stages.dim.rule.multipliers",
                           f"expected {count} positive numbers (one per stage), found {mult!r}")
        return ("multipliers", tuple(mult))
    raise ctx.fail(rloc, "arch.stages.dim.rule", f"{rule!r} is not a width rule; allowed: double, same, "
                                                  "{multipliers: [m0, m1, ...]}")


def _stage_field(ctx: _Ctx, data: LocDict, spec: Field, count: int, tied: bool, probe: MixerContext
                 ) -> StageField:
    """One per-stage field: a mixer node or a slot per stage (the same one repeated when tied, or when the
    value written for all stages is fixed), checked as the StageSpec field ``spec`` says."""
    name = spec.name
    kind = field_kinds(StageSpec)[name]
    raw_f = data[name]
    floc = data.loc(name)
    is_list = isinstance(raw_f, list)
    if is_list and len(raw_f) != count:
        raise ctx.fail(floc, f"arch.stages.{name}", f"a per-stage list needs {count} entries (stages.count), "
                                                    f"found {len(raw_f)}")
    if is_list and tied and count > 1:
        raise ctx.fail(floc, f"arch.stages.{name}", "a per-stage list cannot be tied; remove it from tie")
    per: list[Any] = []
    shared = None
    for i in range(count):
        if shared is not None:
            per.append(shared)
            continue
        entry = raw_f[i] if is_list else raw_f
        eloc = raw_f.loc(i) if isinstance(raw_f, LocList) else floc
        path = f"arch.stages[{i}].{name}" if (is_list or not tied) else f"arch.stages.{name}"
        if kind is MixerSpec:
            node: Any = _mixer_node(ctx, entry, name.split("_")[0], path, eloc, probe)
        else:
            holder = LocDict({name: entry})
            holder.locs = {name: eloc}
            node = _slot(ctx, holder, name, path, None, _field_check(name, spec, kind), kind)
        if tied or (not is_list and node_fixed(node)):
            node = shared = node if tied else _rename(node, f"arch.stages.{name}")
        per.append(node)
    return StageField(name, per, tied or shared is not None)


def node_fixed(node: Any) -> bool:
    if isinstance(node, MixerNode):
        return node.family_slot is None and all(s.domain.fixed for s in node.slots())
    return node.domain.fixed


def _rename(node: Any, path: str) -> Any:
    if isinstance(node, Slot):
        return Slot(path, node.domain, node.loc, node.ratio)
    return node


def load_space(path: str | Path) -> Space:
    """Parse and validate a space file eagerly; every error names ``file:line``, the YAML path and what is allowed."""
    path = Path(path)
    data = _load_tree(path)
    ctx = _Ctx()
    top = _check_keys(ctx, data, "", TOP_KEYS, data.start)
    plugins = tuple(plugin_ref(p) for p in yaml_plugins(top))  # before anything names a mixer or a dataset
    name = top.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ctx.fail(top.loc("name"), "name", f"expected a non-empty name, found {_kind(name)}")
    if "description" in top and not isinstance(top["description"], str):
        raise ctx.fail(top.loc("description"), "description", "expected text")
    task = _parse_task(ctx, top.get("task"), top.loc("task"))
    constraints = _parse_constraints(ctx, top.get("constraints"), top.loc("constraints"))
    if "arch" not in top:
        raise ctx.fail(top.start, "arch", f"{data.missing('arch')}: describe the architectures to search under "
                                          "'arch'")
    arch = _check_keys(ctx, top["arch"], "arch", ARCH_KEYS, top.loc("arch"))
    layout = _field_slots(ctx, arch, ArchConfig, "", ("layout",))["layout"]
    layouts = layout.domain.values()
    sections = {part: _check_keys(ctx, arch.get(part, LocDict()), f"arch.{part}", keys, arch.loc(part))
                for part, keys in SECTION_KEYS.items()}
    if "patch_size" not in sections["stem"] or "dim" not in sections["stem"]:
        raise ctx.fail(arch.loc("stem"), "arch.stem", "patch_size and dim are required")
    globals_: dict[str, Slot] = {}
    for part, data in sections.items():
        globals_.update(_field_slots(ctx, data, field_kinds(ArchConfig)[part], part, SECTION_KEYS[part]))
    globals_.update(_field_slots(ctx, arch, ArchConfig, "", tuple(k for k in ARCH_SCALARS if k != "layout")))
    if "stages" not in arch:
        raise ctx.fail(arch.start, "arch.stages", "missing: describe the stages")
    default_layout = "pyramid" if layouts and "pyramid" in layouts else "isotropic"
    count, fields, dim_rule = _parse_stages(ctx, arch["stages"], arch.loc("stages"), default_layout)
    ps = globals_["stem.patch_size"].domain.values()
    if ps is not None and not any(task.image_size % p == 0 for p in ps):
        raise ctx.fail(globals_["stem.patch_size"].loc, "arch.stem.patch_size",
                       f"no patch size in {list(ps)} divides the task's image size {task.image_size}")
    space = Space(name=name, path=str(path), task=task, constraints=constraints, layout=layout, globals_=globals_,
                  count=count, fields=fields, dim_rule=dim_rule, locs=ctx.locs,
                  raw={**top, **({"plugins": list(plugins)} if plugins else {})}, plugins=plugins)
    _probe_validity(space)
    return space


def _probe_validity(space: Space, draws: int = 300) -> None:
    """Fail early, at the responsible line, if (almost) no candidate of the space can be built."""
    rng = random.Random(0)
    reasons: Counter[tuple[str, str]] = Counter()
    for _ in range(draws):
        _, arch, err = space.sample_random(rng)
        if arch is not None:
            return
        reasons[(err.path, err.message)] += 1
    (arch_path, message), _ = reasons.most_common(1)[0]
    loc, ypath = locate_arch_path(space, arch_path)
    raise LocatedError(loc, ypath, f"no valid architecture in {draws} random draws; most common reason: "
                                   f"{arch_path}: {message}")


def locate_arch_path(space: Space, arch_path: str) -> tuple[Loc | None, str]:
    """Map an ArchConfig path (``stages[1].token_mixer.patch_groups``) to the space's YAML line and path."""
    import re

    m = re.match(r"stages\[(\d+)\]\.(\w+)(?:\.(\w+))?", arch_path)
    candidates = []
    if m:
        i, fld, sub = m.group(1), m.group(2), m.group(3)
        for base in (f"arch.stages[{i}].{fld}", f"arch.stages.{fld}"):
            if sub and fld in ("token_mixer", "channel_mixer"):
                candidates += [f"{base}.{fam}.{sub}" for fam in mixer_families(fld.split("_")[0])]
                candidates += [f"{base}.{fam}" for fam in mixer_families(fld.split("_")[0])]
            candidates.append(base)
        candidates.append("arch.stages")
    candidates += [f"arch.{arch_path}", "arch." + arch_path.split(".")[0], "arch"]
    for c in candidates:
        if c in space.locs and space.locs[c] is not None:
            return space.locs[c], c
    return None, "arch"


def describe_space(space: Space) -> list[tuple[str, str]]:
    """(parameter name, domain) rows for ``mixnas space check`` (fixed parameters shown as values)."""
    rows = []
    for slot in space.slots():
        dom = slot.domain.describe()
        if slot.ratio:
            dom = f"ratio x stage dim: {dom}"
        rows.append((slot.name, dom if not slot.domain.fixed else f"= {dom}"))
    if space.dim_rule is not None:
        rule, mult = space.dim_rule
        rows.append(("arch.stages.dim", f"= rule {rule}" + (f" {list(mult)}" if mult else "")))
    return rows


# -- before launch: what a search checks, and which draws are invalid ---------------------------------------


@dataclass(frozen=True)
class LaunchPlan:
    """What a search of a space would run: the dataset, the objectives, the training recipe and the input."""

    dataset: str
    objectives: tuple[Objective, ...]
    train: dict[str, Any]  # a TrainConfig dict, seed included
    input: InputSpec


def launch_check(space: Space, *, dataset: str | None = None, objectives: str | None = None,
                 train: Mapping[str, Any] | None = None, seed: int = 0) -> LaunchPlan:
    """Everything about a space's task that a search checks before launch: the dataset is registered, every
    objective is a metric trials report, and the training recipe (``task.train``, then ``train`` overrides)
    is a valid ``TrainConfig``. ``mixnas space check`` and ``mixnas search`` (:func:`mixnas.search_driver.prelaunch`)
    both call it, so the check rejects whatever the search would. A mistake in the space is located at its
    line; one in an override (``dataset``, ``objectives``, ``train``: the search's flags) names the flag."""
    from mixnas.data import get_dataset
    from mixnas.train import TrainConfig

    task = space.task

    def located(key: str, message: str) -> LocatedError:
        return LocatedError(space.locs.get(key) or space.locs.get("task") or (space.path, 0), key, message)

    name = dataset or task.dataset
    try:
        spec = get_dataset(name)
    except MixnasError as err:
        if dataset:
            raise MixnasError(f"--dataset: {err}") from None
        raise located("task.dataset", str(err)) from None
    if objectives:
        chosen = parse_objectives(objectives.split(","), lambda m: MixnasError(f"--objectives: {m}"))
    else:
        chosen = task.objectives
    for o in chosen:
        if o.metric not in OBJECTIVES:  # parse_objectives allows only these; a Task built in code may not
            raise located("task.objectives", f"{o.metric!r} is not a metric trials report; allowed: "
                                             f"{', '.join(OBJECTIVES)}")
    overrides = dict(train or {})
    recipe = {**dict(task.train), **overrides, "seed": seed}
    try:
        cfg = TrainConfig.from_dict(recipe, where="train config").to_dict()
    except MixnasError as err:
        text = str(err).removeprefix("train config: ")
        key = text.split(" ", 1)[0]
        space_train = dict(task.train)
        # the search passes the space's own values on as settings too: one equal to the space's is the space's
        if key in space_train and overrides.get(key, space_train[key]) == space_train[key]:
            raise located(f"task.train.{key}", text.split(" ", 1)[1] if " " in text else text) from None
        raise
    inp = InputSpec(task.image_size, spec.in_channels if dataset else task.in_channels, task.num_classes)
    return LaunchPlan(name, tuple(chosen), cfg, inp)


@dataclass
class InvalidShare:
    """Which of a space's uniform random draws break a validity rule, and why (``mixnas space check``)."""

    draws: int
    invalid: int
    reasons: list[tuple[str, int, str]]  # (the rule's ArchConfig path and message pattern, draws, an example)
    causes: list[tuple[dict[str, Any], int, int]]  # (parameter values, invalid draws with them, draws with them)

    @property
    def share(self) -> float:
        return self.invalid / self.draws if self.draws else 0.0


def invalid_share(space: Space, draws: int = 400, seed: int = 0) -> InvalidShare:
    """Draw ``draws`` candidates uniformly (seeded) and explain the invalid ones: the validity rules they break
    (grouped by ArchConfig path and message, numbers generalised) and the parameter values, or pairs of
    values, that make a draw invalid (nearly) every time they occur; failing that, the values most
    over-represented among the invalid draws."""
    import re

    rng = random.Random(seed)
    rows: list[tuple[dict[str, Any], ArchError | None]] = []
    for _ in range(draws):
        params, _arch, err = space.sample_random(rng)
        rows.append((params, err))
    bad = [(p, e) for p, e in rows if e is not None]
    groups: Counter[str] = Counter()
    example: dict[str, str] = {}
    for _, err in bad:
        key = f"{re.sub(r'[0-9]+', 'N', err.path)}: {re.sub(r'[0-9]+', 'N', err.message)}"
        groups[key] += 1
        example.setdefault(key, f"{err.path}: {err.message}")
    reasons = [(key, n, example[key]) for key, n in groups.most_common()]
    causes: list[tuple[dict[str, Any], int, int]] = []
    if bad:
        stats: dict[tuple, list[int]] = {}  # (param, repr(value)) or a pair of them -> [invalid, draws]
        for params, err in rows:
            pairs = sorted((k, repr(v)) for k, v in params.items())
            combos = [(p,) for p in pairs] + [(a, b) for i, a in enumerate(pairs) for b in pairs[i + 1:]]
            for c in combos:
                seen = stats.setdefault(c, [0, 0])
                seen[0] += err is not None
                seen[1] += 1
        values = {(k, repr(v)): v for params, _ in rows for k, v in params.items()}
        enough = max(10, draws // 40)  # draws a value (pair) must appear in to be called a cause
        always = [c for c, (inv, n) in stats.items() if n >= enough and inv >= 0.9 * n]
        # keep the smallest combinations: a pair only when neither of its values alone explains it
        singles = {c[0] for c in always if len(c) == 1}
        chosen = [c for c in always if len(c) == 1 or not (set(c) & singles)]
        if not chosen:
            overall = len(bad) / draws
            chosen = sorted((c for c, (inv, n) in stats.items() if len(c) == 1 and n >= enough
                             and inv / n >= 1.5 * overall), key=lambda c: -stats[c][0] / stats[c][1])[:5]
        chosen.sort(key=lambda c: (-stats[c][0], len(c)))
        causes = [({k: values[(k, r)] for k, r in c}, *stats[c]) for c in chosen[:8]]
    return InvalidShare(draws, len(bad), reasons, causes)


__all__ = ["Constraints", "Domain", "InvalidCandidate", "InvalidShare", "LaunchPlan", "Objective", "Space", "Task",
           "describe_space", "invalid_share", "launch_check", "load_space", "parse_objectives"]

