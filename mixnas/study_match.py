"""Matched MACs for a study level: widen or deepen the backbone until a level costs what the comparison costs.

A token mixer compared with others on one backbone is compared fairly only at equal compute: a new mixer that
costs 30 % more MACs at the shared width wins by spending more. A named level of a study may therefore say::

    factors:
      mixer:
        levels:
          mine: {"stages[0].token_mixer": {name: my_mixer}, match_macs: {target: median, by: width}}

``target`` is a number of MACs (``19.2M``, ``1.5e7``), the name of another level of the same factor (its MACs
at the baseline), or ``median`` (the median MACs of the factor's levels that are not matched themselves; the
default). ``by: width`` (default) scales every width of the backbone (the stem and each stage, by the first
stage's ratio) in steps of ``step`` channels (default 2); width-dependent mixer parameters follow: a value at
its family's width-dependent default is re-defaulted at the new width (a channel MLP at 4 x dim stays at 4 x
dim), any other width-dependent integer is scaled with the width (a set ratio is kept); widths the mixer
rejects (heads or groups that do not divide them) are skipped. ``by: depth`` sets the depth of the deepest
stage (the first of the deepest). ``tolerance: P`` refuses the study when the closest match is more than P %
off; a target more than 5 % past what the narrowest or widest candidate reaches is refused anyway. MACs come from :func:`mixnas.complexity.complexity` (fvcore, cached on disk), which grow with width and
depth, so the search is a bisection over the candidates.

:func:`mixnas.study.load_study` does the matching when it loads the file; the chosen width or depth becomes
part of the level's settings (``study.yaml`` of a run records them and the match), and the report prints a
match line per matched level (:func:`match_line`).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mixnas.config import LIMITS, ArchConfig
from mixnas.errors import ArchError, MixnasError
from mixnas.registry import MixerContext, get_mixer
from mixnas.util import human, parse_si
from mixnas.yamlio import LocatedError, LocDict

KEY = "match_macs"
MATCH_KEYS = ("target", "by", "step", "tolerance")
BY = ("width", "depth")
OUT_OF_REACH = 0.05  # past the narrowest (widest) candidate by more than this share of the target: an error


@dataclass(frozen=True)
class MacMatch:
    """What a level asks for: the target (MACs, a level name, or ``median``), by what, in which steps."""

    target: float | str = "median"
    by: str = "width"
    step: int = 2
    tolerance: float | None = None  # percent; None: report how far off, refuse nothing


@dataclass(frozen=True)
class Matched:
    """The outcome: the chosen width or depth, the base's, the MACs reached and the target."""

    by: str
    value: int
    base_value: int
    macs: int
    target_macs: float
    target_of: str  # "median of 7 levels", "level vit", "given"

    @property
    def off_pct(self) -> float:
        return 100.0 * (self.macs - self.target_macs) / self.target_macs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "off_pct": round(self.off_pct, 2)}


def _fail(node: Any, key: Any, path: str, message: str) -> LocatedError:
    return LocatedError(node.loc(key) if isinstance(node, LocDict) else None, path, message)


def parse_macs(value: Any) -> float | None:
    """A positive MAC count: a number, or text like ``19.2M``, ``1.5e7``, ``2G``; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = parse_si(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        return None
    return float(value)


def parse_match(raw: Any, parent: Any, key: Any, path: str, levels: Sequence[Any]) -> MacMatch:
    """Validate a ``match_macs`` mapping (``levels``: the factor's level names, for a level target)."""
    if not isinstance(raw, dict):
        raise _fail(parent, key, path, "must be a mapping: {target: MACS | LEVEL | median, by: width | depth}")
    for k in raw:
        if k not in MATCH_KEYS:
            raise _fail(raw, k, f"{path}.{k}", f"unknown key; allowed: {', '.join(MATCH_KEYS)}")
    by = raw.get("by", "width")
    if by not in BY:
        raise _fail(raw, "by", f"{path}.by", f"{by!r:.40} is not allowed; allowed: width, depth")
    target = raw.get("target", "median")
    if not (target == "median" or (target in levels and not isinstance(target, bool))):
        macs = parse_macs(target)
        if macs is None:
            others = ", ".join(str(lv) for lv in levels)
            raise _fail(raw, "target", f"{path}.target", f"{target!r:.40} is neither a MAC count (19.2M, 1.5e7), "
                                                         f"median, nor a level of this factor ({others})")
        target = macs
    step = raw.get("step", 2)
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 256:
        raise _fail(raw, "step", f"{path}.step", "must be an integer from 1 to 256 (channels between widths tried)")
    if by == "depth" and "step" in raw:
        raise _fail(raw, "step", f"{path}.step", "only for by: width (depths are tried one by one)")
    tol = raw.get("tolerance")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol <= 100):
        raise _fail(raw, "tolerance", f"{path}.tolerance", "must be a percentage above 0 and at most 100")
    return MacMatch(target, by, step, None if tol is None else float(tol))


def conflicting_path(paths: Sequence[str], by: str) -> str | None:
    """A path of the level that sets what the match adjusts (a width for ``width``, a depth for ``depth``)."""
    field = "dim" if by == "width" else "depth"
    return next((p for p in paths if p.split(".")[-1].split("[")[0] == field and not p.startswith("train.")), None)


# -- the backbone variants -------------------------------------------------------------------------------------


def _rescaled_mixer(section: Mapping[str, Any], role: str, old: MixerContext, new: MixerContext) -> dict[str, Any]:
    """A resolved mixer section at a new width: width-dependent parameters at their default are re-defaulted
    (dropped, so the family's default applies at the new width), other width-dependent integers scaled."""
    out = dict(section)
    family = get_mixer(role, section["name"])
    for p in family.params:
        if not callable(p.default) or p.name not in out:
            continue
        if out[p.name] == p.default_for(old):
            del out[p.name]
        elif p.kind is int and not isinstance(out[p.name], bool):
            out[p.name] = max(1, round(out[p.name] * new.dim / old.dim))
    return out


def variant_settings(base: ArchConfig, by: str, value: int) -> dict[str, Any]:
    """The (path, value) settings that make ``base`` ``value`` wide (the first stage's width) or deep (its
    deepest stage), applied before the level's own settings."""
    if by == "depth":
        k = max(range(len(base.stages)), key=lambda i: (base.stages[i].depth, -i))
        return {f"stages[{k}].depth": value}
    d = base.to_dict()
    ratio = value / base.stages[0].dim
    out: dict[str, Any] = {"stem.dim": max(1, round(base.stem.dim * ratio))}
    for i, (stage, ctx) in enumerate(zip(base.stages, base.contexts())):
        dim = max(1, round(stage.dim * ratio))
        out[f"stages[{i}].dim"] = dim
        new = MixerContext(dim, ctx.grid, ctx.num_prefix_tokens, i)
        for role in ("token", "channel"):
            out[f"stages[{i}].{role}_mixer"] = _rescaled_mixer(d["stages"][i][f"{role}_mixer"], role, ctx, new)
    return out


def candidates(base: ArchConfig, spec: MacMatch) -> list[int]:
    """The widths (multiples of ``step``, up to 8 x the base's, within the width limit) or depths tried."""
    if spec.by == "depth":
        return list(range(1, int(LIMITS["depth"]) + 1))
    top = min(8 * base.stages[0].dim, int(LIMITS["dim"]) * base.stages[0].dim // max(s.dim for s in base.stages))
    return list(range(spec.step, top + 1, spec.step))


def base_value(base: ArchConfig, by: str) -> int:
    return base.stages[0].dim if by == "width" else max(s.depth for s in base.stages)


def closest(values: Sequence[int], macs_of: Callable[[int], int | None], target: float) -> tuple[int, int] | None:
    """The value whose MACs are closest to ``target``, MACs growing with the value; ``macs_of`` is None for a
    value the architecture rejects. Bisection: a few evaluations, not one per candidate."""
    cache: dict[int, int | None] = {}

    def at(i: int) -> int | None:
        if i not in cache:
            cache[i] = macs_of(values[i])
        return cache[i]

    def valid_from(i: int, direction: int) -> int | None:
        while 0 <= i < len(values):
            if at(i) is not None:
                return i
            i += direction
        return None

    lo, hi = 0, len(values) - 1
    while lo < hi:  # the first valid index at or after mid whose MACs reach the target
        mid = (lo + hi) // 2
        j = valid_from(mid, 1)
        if j is None or at(j) >= target:  # type: ignore[operator]
            hi = mid
        else:
            lo = j + 1
    above = valid_from(lo, 1)
    below = valid_from(lo - 1, -1)
    found = [i for i in (below, above) if i is not None]
    if not found:
        return None
    best = min(found, key=lambda i: (abs(at(i) - target), i))  # type: ignore[operator]
    return values[best], at(best)  # type: ignore[return-value]


def match(base: ArchConfig, spec: MacMatch, build: Callable[[dict[str, Any]], ArchConfig], target: float,
          target_of: str) -> tuple[dict[str, Any], Matched]:
    """Search the width or depth whose level (``build``: settings -> the level's ArchConfig) costs closest to
    ``target`` MACs; returns the settings to prepend to the level's and the outcome."""
    from mixnas.complexity import complexity

    failures: list[str] = []

    def macs_of(value: int) -> int | None:
        try:
            arch = build(copy.deepcopy(variant_settings(base, spec.by, value)))
            return complexity(arch).macs
        except (ArchError, MixnasError) as err:  # a width the mixer rejects: skipped
            failures.append(f"at {spec.by} {value}: {err}")
        except Exception as err:  # noqa: BLE001 - a user's mixer that fails to build or trace there
            failures.append(f"at {spec.by} {value}: {type(err).__name__}: {str(err)[:200]}")
        return None

    values = candidates(base, spec)
    found = closest(values, macs_of, target)
    if found is None:
        raise MixnasError(f"no {spec.by} the level's architecture accepts" + (f" ({failures[0]})" if failures else ""))
    value, macs = found
    edge = (value == values[0] and macs > target) or (value == values[-1] and macs < target)
    if edge and abs(macs - target) > OUT_OF_REACH * target:
        raise MixnasError(f"the target {human(target)} MACs is out of reach by {spec.by}: the closest, {spec.by} "
                          f"{value}, costs {human(macs)}")
    return variant_settings(base, spec.by, value), Matched(spec.by, value, base_value(base, spec.by), int(macs),
                                                           float(target), target_of)


def median_target(macs: Mapping[Any, int]) -> tuple[float, str]:
    return float(statistics.median(macs.values())), f"median of {len(macs)} levels"


def match_line(label: str, record: Mapping[str, Any]) -> str:
    """One report line: which width or depth the level got and how close its MACs came to the target."""
    off = 100.0 * (record["macs"] - record["target_macs"]) / record["target_macs"]
    return (f"MACs matched: {label} at {record['by']} {record['value']} (base {record['base_value']}): "
            f"{human(record['macs'])} MACs vs target {human(record['target_macs'])} ({record['target_of']}), "
            f"{off:+.1f} %.")
