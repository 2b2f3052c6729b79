"""Registries of token mixers, channel mixers and named models.

A mixer family registers its ``nn.Module`` class together with the *declared* parameters it accepts
(:class:`Param`) and its validity rules. The declarations are the single source of truth for three
consumers: :class:`~mixnas.config.ArchConfig` (fills defaults, type-checks, rejects unknown keys), the
search-space language (validates each branch's parameters) and the contract tests (every declared
parameter must change the built model).

The tensor contract shared by every mixer (token and channel alike)::

    forward(x: Tensor[B, N, C]) -> Tensor[B, N, C]
    N = ctx.num_prefix_tokens + H * W, tokens in row-major (h, w) order after the prefix tokens,
    (H, W) = ctx.grid, C = ctx.dim, all fixed when the module is built.

``(B, N, C)`` with row-major tokens is the same memory as a channels-last ``(B, H, W, C)`` image, so
spatial mixers view it as NCHW in ``channels_last`` memory format at no copy. Spatial families declare
``spatial=True`` and refuse prefix (class) tokens.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mixnas.errors import ArchError, MixnasError, UnknownNameError, did_you_mean

ROLES = ("token", "channel")


@dataclass(frozen=True)
class MixerContext:
    """Where a mixer sits: its width, its token grid and the number of prefix (class) tokens.

    ``block_index`` is the block's position within its stage (0 for the first): families whose blocks
    alternate (Hire-MLP's cross-region shift) read it; parameters are resolved once per stage with 0.
    """

    dim: int
    grid: tuple[int, int]
    num_prefix_tokens: int = 0
    stage_index: int = 0
    block_index: int = 0

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.grid[0] * self.grid[1]


Default = Any  # a value, or a callable (MixerContext) -> value for width-dependent defaults
# Bounds of a declared parameter without its own maximum (widths, counts, ratios): a file is untrusted input,
# and a value past these builds nothing a machine can hold.
INT_BOUND = 65536
FLOAT_BOUND = 1e6


@dataclass(frozen=True)
class Param:
    """One declared, searchable parameter of a mixer family."""

    name: str
    kind: type
    default: Default
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None

    def default_for(self, ctx: MixerContext) -> Any:
        return self.default(ctx) if callable(self.default) else self.default

    def check(self, value: Any, path: str) -> Any:
        """Return ``value`` coerced to the declared type, or raise an :class:`ArchError` at ``path``."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ArchError(path, f"expected true or false, found {value!r:.60}")
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ArchError(path, f"expected an integer, found {value!r:.60}")
            value = int(value)  # numpy integers from samplers become plain ints (stable digests)
            if self.max is None and abs(value) > INT_BOUND:
                raise ArchError(path, f"{value!r:.40} is out of range; allowed: integers up to {INT_BOUND}")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ArchError(path, f"expected a number, found {value!r:.60}")
            value = float(value)
            if not math.isfinite(value) or (self.max is None and abs(value) > FLOAT_BOUND):
                raise ArchError(path, f"{value!r} is out of range; allowed: finite numbers up to {FLOAT_BOUND:g}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ArchError(path, f"expected a string, found {value!r:.60}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise ArchError(path, f"{value!r} is not allowed{did_you_mean(value, map(str, self.choices))}; "
                                  f"allowed: {allowed}")
        if self.min is not None and value < self.min:
            raise ArchError(path, f"{value!r} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ArchError(path, f"{value!r} is above the maximum {self.max}")
        return value

    def describe(self) -> str:
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        bounds = []
        if self.min is not None:
            bounds.append(f">= {self.min}")
        if self.max is not None:
            bounds.append(f"<= {self.max}")
        return f"{self.kind.__name__} {' '.join(bounds)}".strip()


Rule = Callable[[Mapping[str, Any], MixerContext], list[tuple[str, str]]]
"""A validity rule: (resolved params, context) -> [(param name or '', message), ...]."""


@dataclass(frozen=True)
class MixerFamily:
    """A registered mixer: its module class, declared parameters and validity rules."""

    name: str
    role: str
    cls: type[nn.Module]
    params: tuple[Param, ...]
    rules: tuple[Rule, ...] = ()
    spatial: bool = False
    doc: str = ""
    own_norm: bool = False  # the mixer normalises its input itself: the block gives it x, not norm(x)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resolve(self, params: Mapping[str, Any], ctx: MixerContext, path: str) -> dict[str, Any]:
        """Fill defaults, type-check, reject unknown keys and apply the validity rules."""
        unknown = [k for k in params if k not in self.param_names]
        if unknown:
            key = unknown[0]
            raise ArchError(f"{path}.{key}", f"unknown parameter of {self.role} mixer {self.name!r}"
                            f"{did_you_mean(key, self.param_names)}; allowed: {', '.join(self.param_names)}")
        resolved = {}
        for p in self.params:
            value = params[p.name] if p.name in params else p.default_for(ctx)
            resolved[p.name] = p.check(value, f"{path}.{p.name}")
        if self.spatial and ctx.num_prefix_tokens:
            raise ArchError(path, f"{self.role} mixer {self.name!r} mixes a 2-D grid and cannot take a "
                                  "class token; set class_token: false")
        for rule in self.rules:
            for key, message in rule(resolved, ctx):
                raise ArchError(f"{path}.{key}" if key else path, message)
        return resolved

    def build(self, params: Mapping[str, Any], ctx: MixerContext) -> nn.Module:
        return self.cls(ctx, **params)


_FAMILIES: dict[str, dict[str, MixerFamily]] = {"token": {}, "channel": {}}


def register_mixer(role: str, name: str, params: list[Param], *, rules: list[Rule] | None = None,
                   spatial: bool = False, own_norm: bool = False) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a mixer family under ``name`` for ``role`` ('token' or 'channel').

    ``own_norm=True``: the block skips its pre-norm and passes the raw residual stream, for mixers made of
    several normalised residual steps of their own (RaftMLP's vertical then horizontal mixing).
    """
    if role not in ROLES:
        raise RegistrationError(f"register_mixer: role {role!r} is not one of {', '.join(ROLES)}")
    _check_name(name, f"{role} mixer")
    params = list(params)
    for p in params:
        _check_param(p, f"{role} mixer {name!r}")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise RegistrationError(f"{role} mixer {name!r}: a parameter is declared twice in {names}")
    if not all(callable(r) for r in rules or ()):
        raise RegistrationError(f"{role} mixer {name!r}: rules must be callables (params, ctx) -> [(key, message)]")

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _FAMILIES[role]:
            raise RegistrationError(f"{role} mixer {name!r} registered twice (the first: "
                                    f"{_FAMILIES[role][name].cls.__module__}.{_FAMILIES[role][name].cls.__qualname__})")
        _check_module_class(cls, names, f"{role} mixer {name!r}")
        doc = next(iter((cls.__doc__ or "").strip().splitlines()), "")
        _FAMILIES[role][name] = MixerFamily(name, role, cls, tuple(params), tuple(rules or ()), spatial, doc,
                                               own_norm)
        return cls

    return decorate


class RegistrationError(MixnasError):
    """A mixer, model or dataset registered with a declaration that cannot work (from a plugin, mostly)."""


PARAM_KINDS = (bool, int, float, str)


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise RegistrationError(f"{what} name {name!r:.60} must be a non-empty string of letters, digits, _ . + - "
                                "(it is written in YAML files and on the command line)")


def _check_param(p: Any, what: str) -> None:
    """A declared parameter must be a :class:`Param` of a YAML-able kind whose fixed default passes its own check."""
    if not isinstance(p, Param):
        raise RegistrationError(f"{what}: params must be mixnas.registry.Param objects, found {p!r:.60}")
    if not isinstance(p.name, str) or not p.name.isidentifier():
        raise RegistrationError(f"{what}: parameter name {p.name!r:.60} must be a Python identifier (it is a keyword "
                                "argument of the module)")
    if p.kind not in PARAM_KINDS:
        raise RegistrationError(f"{what}: parameter {p.name!r} has kind {p.kind!r}; allowed: bool, int, float, str")
    if not callable(p.default):
        try:
            p.check(p.default, f"{what}.{p.name}")
        except ArchError as err:
            raise RegistrationError(f"{what}: the default of parameter {p.name!r} fails its own declaration: "
                                    f"{err.message}") from None


def _check_module_class(cls: Any, names: list[str], what: str) -> None:
    """The class must be an ``nn.Module`` whose ``__init__(ctx, **params)`` takes every declared parameter."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise RegistrationError(f"{what}: register_mixer decorates a torch.nn.Module subclass, found {cls!r:.60}")
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return  # a C-level __init__: nothing to check
    ps = list(sig.parameters.values())[1:]  # after self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps):
        return
    accepted = {p.name for p in ps}
    missing = [n for n in names if n not in accepted]
    if not ps or missing:
        raise RegistrationError(f"{what}: {cls.__qualname__}.__init__ must take (ctx, " + ", ".join(names) +
                                ")" + (f"; it lacks {', '.join(missing)}" if missing else ""))


def _load_builtin() -> None:
    importlib.import_module("mixnas.mixers")
    importlib.import_module("mixnas.plugins").load_entry_points()  # by name: registration, not a layer edge


def mixer_families(role: str) -> dict[str, MixerFamily]:
    """All registered families of a role, by name."""
    _load_builtin()
    return dict(_FAMILIES[role])


def get_mixer(role: str, name: str) -> MixerFamily:
    families = mixer_families(role)
    if name not in families:
        raise UnknownNameError(f"{role} mixer", name, families)
    return families[name]


def find_mixer(target: str, role: str | None = None) -> MixerFamily:
    """The family ``target`` names: ``FILE.py:NAME`` or ``module:NAME`` (loading that plugin first, and looking
    only at what it defines) or a registered ``NAME``; NAME is the registered name or the class name. Used by
    ``mixnas check-mixer``, ``space from-mixer`` and ``study run --add-mixer``."""
    from mixnas.plugins import load_plugin, split_target

    module, name = split_target(target)
    plugin = load_plugin(module) if module else None
    roles = (role,) if role else ROLES
    families = [f for r in roles for f in mixer_families(r).values()]
    if plugin is not None:
        families = [f for f in families if _defined_in(f.cls, plugin.module)]
    matches = [f for f in families if name in (f.name, f.cls.__name__, f.cls.__qualname__)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        both = " and ".join(f"a {f.role} mixer ({f.cls.__name__})" for f in matches)
        raise MixnasError(f"{name!r} is registered as {both}; add --role {' or --role '.join(f.role for f in matches)}")
    raise MixnasError(_not_found(target, name, families, role, plugin))


def _defined_in(cls: type, module: str) -> bool:
    return cls.__module__ == module or cls.__module__.startswith(module + ".")


def _not_found(target: str, name: str, families: list[Any], role: str | None, plugin: Any) -> str:
    """Why ``name`` names no family: with a did-you-mean, what is registered, and an unregistered class."""
    kind = f"{role} mixer" if role else "mixer"
    known = sorted({f.name for f in families} | {f.cls.__name__ for f in families})
    where = f" in {plugin.file or plugin.module}" if plugin is not None else ""
    if plugin is not None:
        obj = getattr(sys.modules.get(plugin.module), name, None)
        if isinstance(obj, type) and hasattr(obj, "forward"):
            return (f"{target}: class {name} is not registered as a mixer: decorate it with "
                    "@register_mixer(role, name, params=[...]) from mixnas.registry")
        if not families:
            return f"{target}: {plugin.file or plugin.module} registers no {kind}"
    registered = ", ".join(f"{f.name} ({f.role})" for f in sorted(families, key=lambda f: (f.role, f.name)))
    return f"unknown {kind} {name!r}{where}{did_you_mean(name, known)}; registered: {registered}"


# ---------------------------------------------------------------------------------------------------------
# Named models


@dataclass(frozen=True)
class Reported:
    """Numbers a paper or official repository reports for a named model, with where they come from."""

    params: int | None
    macs: int | None
    source: str
    top1: float | None = None
    note: str = ""
    params_exact: bool = True  # False when only a rounded count is known (then 0.1% tolerance)

    PARAMS_REL_TOL = 1e-3
    MACS_REL_TOL = 1e-2

    def macs_tolerance(self) -> float:
        """Allowed |measured - reported| MACs: 1%, or the rounding of the printed figure if larger.

        Papers print MACs to a few significant digits (Strip-MLP T*: "2.5G"); a figure printed as 2.5G
        stands for anything in [2.45G, 2.55G), so half a unit of its last digit is also within tolerance.
        """
        if self.macs is None:
            return 0.0
        digits = str(self.macs).rstrip("0")
        half_unit = 0.5 * 10 ** (len(str(self.macs)) - len(digits))
        return max(self.MACS_REL_TOL * self.macs, half_unit)

    def mismatches(self, params: int, macs: int) -> list[str]:
        """Why measured numbers disagree with the reported ones ([] when they agree)."""
        out = []
        if self.params is not None:
            if self.params_exact and params != self.params:
                out.append(f"{params:,} parameters, reported exactly {self.params:,}")
            elif not self.params_exact and abs(params - self.params) > self.PARAMS_REL_TOL * self.params:
                out.append(f"{params:,} parameters, reported {self.params:,} (more than 0.1% off)")
        if self.macs is not None and abs(macs - self.macs) > self.macs_tolerance():
            out.append(f"{macs / 1e9:.3f} GMACs, reported {self.macs / 1e9:.3f} G (tolerance "
                       f"{self.macs_tolerance() / 1e9:.3f} G)")
        return out


@dataclass(frozen=True)
class NamedModel:
    """A registered model: a function that makes its :class:`ArchConfig`, and what its authors report."""

    name: str
    make: Callable[..., Any] = field(repr=False)
    reported: Reported
    family: str
    paper: str


_MODELS: dict[str, NamedModel] = {}


def register_model(name: str, *, reported: Reported, family: str, paper: str):
    """Decorator for ``make(image_size=224, in_channels=3, num_classes=1000) -> ArchConfig``."""

    _check_name(name, "model")
    if not isinstance(reported, Reported):
        raise RegistrationError(f"model {name!r}: reported= must be a mixnas.registry.Reported, found {reported!r:.60}")

    def decorate(make: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS:
            raise RegistrationError(f"model {name!r} registered twice")
        if not callable(make):
            raise RegistrationError(f"model {name!r}: register_model decorates a function that returns an ArchConfig")
        _MODELS[name] = NamedModel(name, make, reported, family, paper)
        return make

    return decorate


def named_models() -> dict[str, NamedModel]:
    importlib.import_module("mixnas.zoo")
    _load_builtin()  # the mixers, and the entry-point plugins that may register models
    return dict(_MODELS)


def get_named_model(name: str) -> NamedModel:
    models = named_models()
    if name not in models:
        raise UnknownNameError("model", name, models)
    return models[name]
