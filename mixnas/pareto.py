"""Pareto logic without Ray or Optuna: non-dominated sorting, crowding distance, hypervolume.

Points are sequences of objective values; ``directions`` says per objective ``"min"`` or ``"max"``. Internally
everything is turned into minimisation (maximised objectives are negated), so an infinity keeps its meaning:
+inf is the best value of a maximised objective and the worst of a minimised one, -inf the reverse (as
Optuna's ``_normalize_value`` does). A missing value (None, or a NaN of any float type) is not an infinity:
it is the worst value where one is needed (hypervolume), and the point is left out of the front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = Sequence[float]


def is_missing(v: object) -> bool:
    """None, or a NaN of any float type (numpy's float32, float16 and longdouble, a 0-d array, a Decimal, a "nan"
    string read from a file); converted with ``float`` first so that every number type answers the same way."""
    if v is None:
        return True
    try:
        return math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def to_min(points: Sequence[Point], directions: Sequence[str]) -> list[tuple[float, ...]]:
    """The points as minimisation vectors: a maximised value is negated, infinities included (+inf, the best
    top-1 imaginable, becomes -inf, the best in minimisation); NaN / None become +inf (worst)."""
    out = []
    for p in points:
        if len(p) != len(directions):
            raise ValueError(f"point {p!r} has {len(p)} values, {len(directions)} directions given")
        row = []
        for v, d in zip(p, directions):
            if d not in ("min", "max"):
                raise ValueError(f"direction must be min or max, found {d!r}")
            if is_missing(v):
                row.append(math.inf)
            else:
                row.append(float(v) if d == "min" else -float(v))
        out.append(tuple(row))
    return out


def non_dominated_sort(points: Sequence[Point], directions: Sequence[str]) -> list[list[int]]:
    """Fronts of indices, best first (fast non-dominated sort, Deb et al. 2002; the n x n dominance matrix
    in numpy, since MO-ASHA sorts a rung at every decision)."""
    import numpy as np

    pts = to_min(points, directions)
    n = len(pts)
    if n == 0:
        return []
    a = np.array(pts, dtype=float).reshape(n, len(directions))
    dom = (a[:, None, :] <= a[None, :, :]).all(-1) & (a[:, None, :] < a[None, :, :]).any(-1)  # i dominates j
    count = dom.sum(0)
    fronts: list[list[int]] = []
    current = np.flatnonzero(count == 0)
    while current.size:
        fronts.append([int(i) for i in current])
        count = count - dom[current].sum(0)
        count[current] = -1
        current = np.flatnonzero(count == 0)
    return fronts


def crowding_distance(points: Sequence[Point], directions: Sequence[str]) -> list[float]:
    """NSGA-II crowding distance of each point within its set: per objective, the boundary points get +inf and
    the others the gap between their neighbours over the objective's span. An objective on which every point
    is equal contributes nothing, to every point: it says nothing about spread, and handing +inf to whichever
    points happen to come first and last by index would rank them by their index. An objective with an
    infinite value contributes only its two ends (the gaps of the others have no finite scale)."""
    pts = to_min(points, directions)
    n = len(pts)
    if n == 0:
        return []
    dist = [0.0] * n
    for k in range(len(directions)):
        order = sorted(range(n), key=lambda i: pts[i][k])
        lo, hi = pts[order[0]][k], pts[order[-1]][k]
        if lo == hi:  # constant objective (an infinite one included)
            continue
        dist[order[0]] = dist[order[-1]] = math.inf
        span = hi - lo
        if not math.isfinite(span):
            continue
        for a, i, b in zip(order, order[1:], order[2:]):
            dist[i] += (pts[b][k] - pts[a][k]) / span
    return dist


def rank_order(points: Sequence[Point], directions: Sequence[str]) -> list[int]:
    """Indices sorted best first: complete vectors by non-dominated front, within a front by crowding distance
    (larger first), ties from the best first objective outward (as Syne Tune's MO-ASHA: of the two infinite
    ends of a 2-D front, the more accurate one first), then by index; vectors with a missing or NaN value
    come after every complete one, in index order."""
    complete = [i for i, p in enumerate(points) if not any(is_missing(v) for v in p)]
    sub = [points[i] for i in complete]
    first = [v[0] for v in to_min(sub, directions)]
    order: list[int] = []
    for front in non_dominated_sort(sub, directions):
        crowd = crowding_distance([sub[i] for i in front], directions)
        order += [complete[i] for _, i in sorted(zip(crowd, front), key=lambda t: (-t[0], first[t[1]], t[1]))]
    return order + [i for i in range(len(points)) if i not in set(complete)]


def pareto_front(points: Sequence[Point], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (empty input: empty front); points with a NaN/None are left out."""
    keep = [i for i, p in enumerate(points) if not any(is_missing(v) for v in p)]
    fronts = non_dominated_sort([points[i] for i in keep], directions)
    return sorted(keep[i] for i in fronts[0]) if fronts else []


def hypervolume(points: Sequence[Point], directions: Sequence[str], reference: Point) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference`` (given in the objectives' own
    units and directions). Points not strictly better than the reference in every objective add nothing,
    points with a missing (NaN / None) value neither; a point infinitely better than the reference in one
    objective makes the volume infinite (as Optuna's ``compute_hypervolume``).

    A NaN or None in ``reference`` raises ValueError: it would otherwise become +inf, the worst value, and give
    an infinite volume. The callers compute the reference themselves (from the runs' worst values, a table's
    scale, chance accuracy), so a NaN there is a bug upstream, not a user's input."""
    if len(reference) != len(directions):
        raise ValueError(f"reference {reference!r} has {len(reference)} values, {len(directions)} directions given")
    if any(is_missing(v) for v in reference):
        raise ValueError(f"hypervolume reference point has a missing (NaN/None) value: {reference!r}")
    ref = to_min([reference], directions)[0]
    pts = [p for p in to_min(points, directions) if all(x < r for x, r in zip(p, ref))]
    hv = _hv(pts, ref)
    return math.inf if math.isnan(hv) else hv  # inf - inf between two infinite points: the volume is infinite


def _hv(pts: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in pts)
    if len(ref) == 2:
        total, best_y = 0.0, ref[1]
        for x, y in sorted(pts):
            if y < best_y:
                total += (ref[0] - x) * (best_y - y)
                best_y = y
        return total
    # slice along the last objective (HSO); fine for the small fronts of a search
    pts = sorted(pts, key=lambda p: p[-1])
    total = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        depth = upper - p[-1]
        if depth > 0:
            total += depth * _hv([q[:-1] for q in pts[:i + 1]], ref[:-1])
    return total
