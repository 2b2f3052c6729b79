"""Reproduction studies: a study file, its validation, and its resolution into trials.

A study file (YAML, see ``studies/``) names a base architecture, the factors to vary and their levels, the
seeds, the task and training recipe, the objectives, and optionally the values a paper reported per level::

    name: strip_width
    plugins: [my_mixer.py]                        # optional: modules registering mixers (relative to this file)
    base: ../examples/strip_mlp_1m_fmnist.yaml   # a named model, or an ArchConfig YAML (relative to this file)
    task: {dataset: fashion-mnist}                # dataset, data_dir, image_size, in_channels, num_classes,
                                                  # test_eval (also score the final model on the test split)
    train: {epochs: 1, fraction: 0.1}             # TrainConfig fields (mixnas/train.py)
    factors:
      strip_width:
        path: stages[0:2].token_mixer.strip_width # or stages.*.x (every stage), stages[2].depth, train.lr
        levels: [1, 3, 5, 7]
    # a named level may ask for the comparison's MACs: match_macs: {target: median | LEVEL | 19.2M,
    # by: width | depth} (mixnas/study_match.py: the backbone's width or depth is chosen at load)
    baseline: {strip_width: 3}                    # default: the first level of every factor
    seeds: [0, 1, 2]
    objectives: [top1]
    paper:
      citation: "..."
      values: {3: 80.2, 5: 79.9}                  # keyed by level (the value, or the label of a grid level)
      ranks: {1: 1, 3: 2, 5: 3, 7: 3}             # or/and the order its text states (1 = worst, ties equal)
    resources: {cpu: 1, gpu: 0}

Several factors form the full grid of their levels. :func:`load_study` validates everything it can without
training (every resolved ArchConfig included) and reports mistakes as ``file:line: yaml.path: message``.
:func:`resolve` gives one :class:`StudyTrial` per (level, seed); :func:`materialise` writes them all to a run
folder before anything is trained.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from mixnas.config import ArchConfig
from mixnas.errors import ArchError, MixnasError, did_you_mean
from mixnas.plugins import plugin_ref, recorded, yaml_plugins
from mixnas.train import TrainConfig
from mixnas.vocab import STUDY_METRICS as OBJECTIVES
from mixnas.yamlio import LocatedError, LocDict, LocList, load_extended, loads_located, plain

TOP_KEYS = ("name", "description", "extends", "plugins", "base", "task", "train", "factors", "baseline", "seeds", "objectives",
            "paper", "resources")
TASK_KEYS = ("dataset", "data_dir", "image_size", "in_channels", "num_classes", "test_eval")
_SEGMENT = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+|\d*:\d*)\])?$")


@dataclass(frozen=True)
class Factor:
    name: str
    paths: tuple[str, ...]  # dotted paths, all set to the level's value
    levels: tuple[Any, ...]
    settings: dict[str, dict[str, Any]] | None = None  # named levels: level name -> {path: value}

    def assignments(self, value: Any) -> list[tuple[str, Any]]:
        """The (path, value) pairs a level of this factor sets."""
        if self.settings is not None:
            return list(self.settings[value].items())
        return [(p, value) for p in self.paths]


@dataclass(frozen=True)
class StudyTrial:
    """One training run of a study: a level (factor -> value), a seed, and what it trains."""

    label: str  # the level's label, e.g. 'strip_width-3' (file-name safe)
    level: dict[str, Any]
    seed: int
    arch: ArchConfig
    train: dict[str, Any]  # TrainConfig fields, seed included
    digest: str  # of the architecture and recipe (the same for equal trials in any study)

    @property
    def key(self) -> str:
        return f"{self.label}-s{self.seed}"

    def to_dict(self, study: Study) -> dict[str, Any]:
        return {"study": study.name, "key": self.key, "label": self.label, "level": self.level, "seed": self.seed,
                "digest": self.digest, "task": study.task, "train": self.train, "arch": self.arch.to_dict()}


@dataclass
class Study:
    name: str
    source: str
    base: str
    task: dict[str, Any]
    train: dict[str, Any]
    factors: list[Factor]
    baseline: dict[str, Any]
    seeds: list[int]
    objectives: list[str]
    paper: dict[str, Any] | None = None  # {"citation", "metric", "values": {label: number}, "ranks", "note"}
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    description: str = ""
    base_arch: ArchConfig | None = None
    matched: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)  # factor -> level -> match_macs outcome
    plugins: tuple[str, ...] = ()  # the plugins the file loaded (absolute .py paths or module names)

    def levels(self) -> list[dict[str, Any]]:
        """Every level, as factor -> value: the full grid of the factors' levels, in file order."""
        names = [f.name for f in self.factors]
        return [dict(zip(names, combo)) for combo in itertools.product(*(f.levels for f in self.factors))]

    def label(self, level: dict[str, Any]) -> str:
        return level_label(level)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "base": self.base, "task": self.task,
                "train": self.train,
                "factors": {f.name: _factor_dict(f) for f in self.factors},
                "baseline": self.baseline, "seeds": self.seeds, "objectives": self.objectives,
                **({"paper": self.paper} if self.paper else {}), "resources": self.resources,
                **({"matched": self.matched} if self.matched else {})}


def _factor_dict(f: Factor) -> dict[str, Any]:
    if f.settings is not None:
        return {"levels": list(f.levels), "settings": f.settings}
    return {"path": list(f.paths) if len(f.paths) > 1 else f.paths[0], "levels": list(f.levels)}


def level_label(level: dict[str, Any]) -> str:
    """'strip_width-3', or 'a-1_b-cgsmm+lsmm' for a grid level; only file-name-safe characters."""
    def clean(v: Any) -> str:
        s = str(v).lower() if isinstance(v, bool) else str(v)
        return re.sub(r"[^A-Za-z0-9.+]", "", s.replace("-", "m")) or "x"

    return "_".join(f"{k}-{clean(v)}" for k, v in level.items())


# -- dotted paths into the ArchConfig dict -------------------------------------------------------------------


def _expand(data: Any, path: str, sections: bool = False) -> list[tuple[str, Any, str]]:
    """The concrete places a path names: (concrete path, container, key); raises ValueError with the reason.
    A path that ends at a section (a mapping, e.g. ``stages.*.token_mixer``) is refused unless ``sections``."""
    segments = path.split(".")
    places: list[tuple[str, Any]] = [("", data)]
    out: list[tuple[str, Any, str]] = []
    for n, seg in enumerate(segments):
        last = n == len(segments) - 1
        nxt: list[tuple[str, Any]] = []
        if seg == "*":
            for where, obj in places:
                if not isinstance(obj, list):
                    raise ValueError(f"'*' needs a list at {where or 'the top'}, found {type(obj).__name__}")
                nxt += [(f"{where}[{i}]", item) for i, item in enumerate(obj)]
            if last:
                raise ValueError("a path cannot end in '*'")
            places = nxt
            continue
        m = _SEGMENT.match(seg)
        if not m:
            raise ValueError(f"bad path segment {seg!r}: use key, key[i], key[a:b] or *")
        key, index = m["key"], m["index"]
        for where, obj in places:
            here = f"{where}.{key}" if where else key
            if not isinstance(obj, dict) or key not in obj:
                allowed = sorted(obj) if isinstance(obj, dict) else []
                hint = did_you_mean(key, allowed)
                raise ValueError(f"no key {key!r} at {where or 'the top'}{hint}"
                                 + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
            if index is None:
                if last:
                    out.append((here, obj, key))
                nxt.append((here, obj[key]))
                continue
            seq = obj[key]
            if not isinstance(seq, list):
                raise ValueError(f"{here} is not a list, so it takes no [index]")
            if ":" in index:
                a, b = index.split(":")
                idx = list(range(len(seq)))[slice(int(a) if a else None, int(b) if b else None)]
                if not idx:
                    raise ValueError(f"{here}[{index}] selects nothing ({here} has {len(seq)} items)")
            else:
                if int(index) >= len(seq):
                    raise ValueError(f"{here}[{index}] is out of range ({here} has {len(seq)} items)")
                idx = [int(index)]
            for i in idx:
                if last:
                    out.append((f"{here}[{i}]", seq, i))
                nxt.append((f"{here}[{i}]", seq[i]))
        places = nxt
    for where, container, key in out:
        if isinstance(container[key], list) or (isinstance(container[key], dict) and not sections):
            raise ValueError(f"{where} is a section, not a value: name one of its fields")
    return out


def apply_level(arch: dict[str, Any], train: dict[str, Any], factors: list[Factor],
                level: dict[str, Any]) -> None:
    """Set every factor's paths to the level's value, in place (``train.X`` paths go to the recipe)."""
    for f in factors:
        for path, value in f.assignments(level[f.name]):
            if path.startswith("train."):
                train[path[len("train."):]] = value
            else:
                for _, container, key in _expand(arch, path, sections=isinstance(value, dict)):
                    container[key] = plain(value)


# -- loading and validation ------------------------------------------------------------------------------------


def _check_path(node: Any, key: Any, ypath: str, p: str, base_dict: dict[str, Any], train_fields: tuple[str, ...],
                sections: bool = False) -> None:
    """A factor's path must name a recipe field or places in the base architecture."""
    if p.startswith("train."):
        if p[6:] not in train_fields or p[6:] == "seed":
            allowed = [f for f in train_fields if f != "seed"]
            raise _err(node, key, ypath, f"{p!r}: unknown recipe field{did_you_mean(p, ['train.' + a for a in allowed])}"
                                         f"; allowed: train.{', train.'.join(allowed)}")
        return
    try:
        _expand(base_dict, p, sections)
    except ValueError as err:
        raise _err(node, key, ypath, f"{p!r} does not fit the base architecture: {err}") from None


def _named_levels(spec: LocDict, fpath: str, fname: str, base_dict: dict[str, Any],
                  train_fields: tuple[str, ...]) -> Factor:
    """``levels: {NAME: {path: value, ...}, ...}``: each named level sets several paths (a value may be a whole
    section, e.g. ``stages.*.token_mixer: {name: mixer, token_hidden_dim: 64}``)."""
    levels = spec["levels"]
    if not levels:
        raise _err(spec, "levels", f"{fpath}.levels", "name at least one level")
    settings: dict[str, dict[str, Any]] = {}
    for lname, assign in levels.items():
        lpath = f"{fpath}.levels.{lname}"
        if not isinstance(lname, (str, int)) or isinstance(lname, bool):
            raise _err(levels, lname, lpath, "a level name must be text or a number")
        assign = _mapping(assign, levels, lname, lpath)
        if not assign:
            raise _err(levels, lname, lpath, "set at least one path (an empty mapping would be the base itself)")
        for p, v in assign.items():
            if not isinstance(p, str):
                raise _err(assign, p, f"{lpath}.{p}", "a path must be text")
            if isinstance(v, list):
                raise _err(assign, p, f"{lpath}.{p}", "a value must be a single value or a mapping (a section)")
            _check_path(assign, p, f"{lpath}.{p}", p, base_dict, train_fields, sections=isinstance(v, dict))
        settings[lname] = plain(dict(assign))
    return Factor(fname, tuple(sorted({p for a in settings.values() for p in a})), tuple(settings), settings)


def _err(node: Any, key: Any, path: str, message: str) -> LocatedError:
    loc = node.loc(key) if isinstance(node, (LocDict, LocList)) else None
    return LocatedError(loc, path, message)


def _mapping(node: Any, parent: Any, key: str, path: str) -> LocDict:
    if not isinstance(node, dict):
        raise _err(parent, key, path, f"must be a mapping, found {type(node).__name__}")
    return node if isinstance(node, LocDict) else LocDict(node)


def _check_keys(node: LocDict, allowed: tuple[str, ...], path: str) -> None:
    for k in node:
        if k not in allowed:
            raise _err(node, k, f"{path}.{k}" if path else str(k),
                       f"unknown key{did_you_mean(str(k), allowed)}; allowed: {', '.join(allowed)}")


def _find_base(ref: str, source: Path | None) -> str:
    from mixnas.yamlio import exists

    if source is not None and not Path(ref).is_absolute():
        candidate = source.parent / ref
        if exists(candidate):
            return str(candidate)
    return ref



def load_study(path: str | Path) -> Study:
    """Read and validate a study file (every trial's ArchConfig and recipe included)."""
    return parse_study(load_extended(path, "study", TOP_KEYS, rebase=("base",)), Path(path))


def loads_study(text: str, filename: str = "<study>") -> Study:
    return parse_study(loads_located(text, filename), None)


def parse_study(data: Any, source: Path | None) -> Study:
    """Validate a study file's tree section by section, then resolve every trial (see :func:`load_study`)."""
    if not isinstance(data, LocDict):
        raise LocatedError((str(source or "<study>"), 1), "", "a study file must be a mapping")
    _check_keys(data, TOP_KEYS, "")
    plugins = tuple(plugin_ref(p) for p in yaml_plugins(data))  # before the base and levels name mixers
    for req in ("base", "factors", "seeds"):
        if req not in data:
            raise LocatedError(data.start, "", f"required key {req!r} {data.missing(req)}")
    name = data.get("name") or (source.stem if source else "study")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise _err(data, "name", "name", "must be a file-name-safe string (letters, digits, _ . + -)")
    task_d = _parse_task(data)
    train = _mapping(data.get("train", LocDict()), data, "train", "train")
    train_fields = tuple(f.name for f in fields(TrainConfig))
    _check_keys(train, train_fields, "train")
    if "seed" in train:
        raise _err(train, "seed", "train.seed", "set the seeds with the top-level 'seeds:' list")
    base_arch, base_ref = _parse_base(data, source, task_d)
    base_dict = base_arch.to_dict()
    factors_node = _mapping(data["factors"], data, "factors", "factors")
    matches = _take_matches(factors_node)  # match_macs keys leave the levels before their paths are checked
    factors = _parse_factors(data, factors_node, base_dict, train_fields)
    study = Study(name=name, source=str(source or "<study>"), base=base_ref, task=task_d,
                  train=plain(dict(train)), factors=factors, baseline=_parse_baseline(data, factors),
                  seeds=_parse_seeds(data), objectives=_parse_objectives(data), resources=_parse_resources(data),
                  description=str(data.get("description", "")), base_arch=base_arch, plugins=plugins)
    _apply_matches(study, matches)
    if "paper" in data:
        study.paper = _parse_paper(data, study)
    _check_levels_build(study, data, train, factors_node, base_dict)
    return study


def _parse_task(data: LocDict) -> dict[str, Any]:
    """The task section: a registered dataset, input sizes within the ArchConfig limits, and the flags."""
    from mixnas.config import LIMITS
    from mixnas.data import get_dataset

    task = _mapping(data.get("task", LocDict()), data, "task", "task")
    _check_keys(task, TASK_KEYS, "task")
    if "dataset" not in task:
        raise _err(data, "task", "task", "needs a dataset (e.g. fashion-mnist, imagefolder, digits)")
    if not isinstance(task["dataset"], str):
        raise _err(task, "dataset", "task.dataset", "expected a dataset name (e.g. fashion-mnist, cifar100, digits)")
    try:
        get_dataset(task["dataset"])
    except MixnasError as err:
        raise _err(task, "dataset", "task.dataset", str(err)) from None
    task_d = {k: task[k] for k in TASK_KEYS if task.get(k) is not None}
    for key in ("image_size", "in_channels", "num_classes"):
        v, top = task_d.get(key), LIMITS[f"input.{key}"]
        if key in task_d and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top):
            raise _err(task, key, f"task.{key}", f"expected an integer from 1 to {top}, found {str(v)[:40]}")
    if "data_dir" in task_d and not isinstance(task_d["data_dir"], str):
        raise _err(task, "data_dir", "task.data_dir", "expected a folder path")
    if not isinstance(task_d.get("test_eval", False), bool):
        raise _err(task, "test_eval", "task.test_eval", "must be true or false (evaluate the final model on the "
                                                        "dataset's test split, reported as test_top1)")
    return task_d


def _parse_base(data: LocDict, source: Path | None, task_d: dict[str, Any]) -> tuple[ArchConfig, str]:
    """The base architecture (an ArchConfig mapping, a named model or an ArchConfig YAML next to the study)
    for the task's input, and how the study names it."""
    from mixnas.models import resolve_arch

    base = data["base"]
    if isinstance(base, dict):
        try:
            base_arch = ArchConfig.from_dict(plain(base), "base")
        except ArchError as err:
            raise _err(data, "base", "", str(err)) from None
        base_ref = base_arch.name or "base"
    elif isinstance(base, str):
        try:
            base_arch = resolve_arch(_find_base(base, source), image_size=task_d.get("image_size"),
                                     in_channels=task_d.get("in_channels"), num_classes=task_d.get("num_classes"))
        except MixnasError as err:
            raise _err(data, "base", "base", str(err)) from None
        base_ref = base
    else:
        raise _err(data, "base", "base", "must be a named model, an ArchConfig YAML path, or an ArchConfig mapping")
    base_arch = base_arch.with_task(task_d.get("image_size"), task_d.get("in_channels"), task_d.get("num_classes"))
    return base_arch, base_ref


def _parse_factors(data: LocDict, factors_node: LocDict, base_dict: dict[str, Any],
                   train_fields: tuple[str, ...]) -> list[Factor]:
    """Every factor: named levels (``levels: {NAME: {path: value}}``) or a path with a list of levels."""
    if not factors_node:
        raise _err(data, "factors", "factors", "name at least one factor")
    factors: list[Factor] = []
    for fname, spec in factors_node.items():
        fpath = f"factors.{fname}"
        if not isinstance(fname, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", fname):
            raise _err(factors_node, fname, fpath, "a factor name must be an identifier")
        spec = _mapping(spec, factors_node, fname, fpath)
        _check_keys(spec, ("path", "levels"), fpath)
        if isinstance(spec.get("levels"), dict) and "path" not in spec:
            factors.append(_named_levels(spec, fpath, fname, base_dict, train_fields))
            continue
        if "path" not in spec or "levels" not in spec:
            raise _err(factors_node, fname, fpath, "needs 'path' (a dotted path into the ArchConfig, or "
                                                   "train.FIELD) and 'levels' (a list of values), or only "
                                                   "'levels' as a mapping of named levels to {path: value}")
        factors.append(_path_factor(spec, fpath, fname, base_dict, train_fields))
    return factors


def _path_factor(spec: LocDict, fpath: str, fname: str, base_dict: dict[str, Any],
                 train_fields: tuple[str, ...]) -> Factor:
    """``path: P`` (or a list of paths, all set alike) with ``levels: [v1, v2, ...]`` of distinct single values."""
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    for p in paths:
        if not isinstance(p, str):
            raise _err(spec, "path", f"{fpath}.path", "must be a string or a list of strings")
        _check_path(spec, "path", f"{fpath}.path", p, base_dict, train_fields)
    levels = spec["levels"]
    if not isinstance(levels, list) or not levels:
        raise _err(spec, "levels", f"{fpath}.levels", "must be a non-empty list of values (or a mapping of "
                                                      "named levels to {path: value})")
    for i, v in enumerate(levels):
        if isinstance(v, (dict, list)):
            raise _err(levels, i, f"{fpath}.levels[{i}]", "a level must be a single value")
    if len({json.dumps(v) for v in levels}) != len(levels):
        raise _err(spec, "levels", f"{fpath}.levels", "repeats a level")
    return Factor(fname, tuple(paths), tuple(plain(levels)))


def _take_matches(factors_node: LocDict) -> dict[str, dict[Any, tuple[Any, LocDict, str]]]:
    """Remove and validate every named level's ``match_macs`` (:mod:`mixnas.study_match`): factor -> level ->
    (the request, the level's node and YAML path, for errors)."""
    from mixnas.study_match import KEY, parse_match

    out: dict[str, dict[Any, tuple[Any, LocDict, str]]] = {}
    for fname, spec in factors_node.items():
        levels = spec.get("levels") if isinstance(spec, dict) and "path" not in spec else None
        if not isinstance(levels, dict):
            continue
        for lname, assign in levels.items():
            if isinstance(assign, dict) and KEY in assign:
                lpath = f"factors.{fname}.levels.{lname}"
                request = parse_match(assign[KEY], assign, KEY, f"{lpath}.{KEY}", list(levels))
                out.setdefault(fname, {})[lname] = (request, assign, lpath)
                del assign[KEY]
    return out


def _apply_matches(study: Study, matches: dict[str, dict[Any, tuple[Any, LocDict, str]]]) -> None:
    """Give every ``match_macs`` level the width or depth whose MACs land closest to its target: the chosen
    settings go before the level's own (so they are part of its trials), the outcome to ``study.matched``."""
    for fname, requests in matches.items():
        i = next(i for i, f in enumerate(study.factors) if f.name == fname)
        settings = dict(study.factors[i].settings or {})
        for lname, (request, node, lpath) in requests.items():
            settings[lname], outcome = _match_level(study, study.factors[i], settings, lname, request, requests,
                                                    node, f"{lpath}.match_macs")
            study.matched.setdefault(fname, {})[lname] = outcome.to_dict()
        study.factors[i] = replace(study.factors[i], settings=settings,
                                   paths=tuple(sorted({p for a in settings.values() for p in a})))


def _level_arch(study: Study, factor: Factor, settings: dict[Any, dict[str, Any]], lname: Any,
                prefix: dict[str, Any]) -> ArchConfig:
    """The level ``lname`` of ``factor`` (the other factors at the baseline) with ``prefix`` set before its own
    settings."""
    trial_factor = replace(factor, settings={**settings, lname: {**prefix, **settings[lname]}})
    trial_study = replace(study, factors=[trial_factor if f.name == factor.name else f for f in study.factors])
    return _resolve_level(trial_study, {**study.baseline, factor.name: lname})[0]


def _match_level(study: Study, factor: Factor, settings: dict[Any, dict[str, Any]], lname: Any, request: Any,
                 requests: dict[Any, Any], node: LocDict, where: str) -> tuple[dict[str, Any], Any]:
    """One ``match_macs`` level: its settings with the chosen width or depth first, and the outcome."""
    from functools import partial

    from mixnas.complexity import complexity
    from mixnas.study_match import KEY, conflicting_path, match

    conflict = conflicting_path(list(settings[lname]), request.by)
    if conflict:
        raise _err(node, KEY, where, f"the level sets {conflict} itself; matching by {request.by} chooses it "
                                      "(drop one of them)")
    arch_of = partial(_level_arch, study, factor, settings)
    try:
        target, target_of = _match_target(request.target, factor, requests,
                                          lambda lv: complexity(arch_of(lv, {})).macs)
        prefix, outcome = match(study.base_arch, request, partial(arch_of, lname), target, target_of)
    except (ArchError, MixnasError) as err:
        raise _err(node, KEY, where, str(err)) from None
    if request.tolerance is not None and abs(outcome.off_pct) > request.tolerance:
        raise _err(node, KEY, where, f"the closest {request.by} ({outcome.value}) costs {outcome.macs:,} MACs, "
                                      f"{outcome.off_pct:+.1f} % from the target {target:,.0f}; the tolerance is "
                                      f"{request.tolerance:g} %")
    return {**prefix, **settings[lname]}, outcome


def _match_target(target: Any, factor: Factor, requests: dict[Any, Any], macs_of: Any) -> tuple[float, str]:
    """A match's target MACs and how the report names it: a number, a level's MACs, or the median of the
    levels that are not matched themselves (each at the baseline of the other factors)."""
    from mixnas.study_match import median_target

    if isinstance(target, float):
        return target, "given"
    if target == "median":
        fixed = [lv for lv in factor.levels if lv not in requests]
        if not fixed:
            raise MixnasError("target median needs levels that are not matched themselves")
        return median_target({lv: macs_of(lv) for lv in fixed})
    if target in requests:
        raise MixnasError(f"level {target!r} is matched itself; name a level with a fixed backbone")
    return float(macs_of(target)), f"level {target}"


def _parse_baseline(data: LocDict, factors: list[Factor]) -> dict[str, Any]:
    """The baseline level: the first level of every factor, unless ``baseline:`` names another of its levels."""
    baseline: dict[str, Any] = {f.name: f.levels[0] for f in factors}
    if "baseline" in data:
        node = _mapping(data["baseline"], data, "baseline", "baseline")
        names = tuple(f.name for f in factors)
        _check_keys(node, names, "baseline")
        for f in factors:
            if f.name in node:
                if node[f.name] not in f.levels:
                    raise _err(node, f.name, f"baseline.{f.name}",
                               f"{node[f.name]!r} is not one of its levels {list(f.levels)}")
                baseline[f.name] = node[f.name]
    return baseline


def _parse_seeds(data: LocDict) -> list[int]:
    seeds = data["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(seeds))
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise _err(data, "seeds", "seeds", "must be a count or a list of distinct non-negative integers")
    return list(seeds)


def _parse_objectives(data: LocDict) -> list[str]:
    objectives = data.get("objectives", ["top1"])
    if not isinstance(objectives, list) or not objectives:
        raise _err(data, "objectives", "objectives", "must be a non-empty list")
    for i, o in enumerate(objectives):
        if o not in OBJECTIVES:
            raise _err(objectives, i, f"objectives[{i}]",
                       f"unknown objective {o!r}{did_you_mean(str(o), OBJECTIVES)}; allowed: {', '.join(OBJECTIVES)}")
    return list(objectives)


def _parse_resources(data: LocDict) -> dict[str, float]:
    resources = {"cpu": 1.0, "gpu": 0.0}
    if "resources" in data:
        node = _mapping(data["resources"], data, "resources", "resources")
        _check_keys(node, ("cpu", "gpu"), "resources")
        for k, v in node.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise _err(node, k, f"resources.{k}", "must be a non-negative number")
            resources[k] = float(v)
    return resources


def _parse_paper(data: LocDict, study: Study) -> dict[str, Any]:
    """The paper section: a citation, and its values and/or ranks keyed by level (its label, or the value of a
    single factor's level), for a metric the study measures."""
    node = _mapping(data["paper"], data, "paper", "paper")
    _check_keys(node, ("citation", "metric", "values", "ranks", "note"), "paper")
    if not isinstance(node.get("citation"), str) or not node["citation"].strip():
        raise _err(data, "paper", "paper.citation", "the paper's values need a citation")
    if "values" not in node and "ranks" not in node:
        raise _err(data, "paper", "paper", "give the paper's 'values' per level, or its 'ranks' (1 = worst; "
                                           "equal ranks for levels it calls equal) when it states only an order")
    found = {what: _paper_numbers(node, what, study) for what in ("values", "ranks") if what in node}
    metric = node.get("metric", "top1")
    if metric not in OBJECTIVES:
        raise _err(node, "metric", "paper.metric", f"must be one of {', '.join(OBJECTIVES)}")
    if metric == "test_top1" and not study.task.get("test_eval"):
        raise _err(node, "metric", "paper.metric", "test_top1 needs 'test_eval: true' in the task section")
    return {"citation": node["citation"].strip(), "metric": metric, "values": found.get("values", {}),
            **({"ranks": found["ranks"]} if "ranks" in found else {}),
            **({"note": str(node["note"])} if "note" in node else {})}


def _paper_numbers(node: LocDict, what: str, study: Study) -> dict[str, float]:
    """``paper.values`` or ``paper.ranks``: one number per level of the study, keyed by the level's label."""
    labels = {level_label(lv): lv for lv in study.levels()}
    first = study.factors[0].name
    by_value = {lv[first]: level_label(lv) for lv in study.levels()} if len(study.factors) == 1 else {}
    values = _mapping(node.get(what), node, what, f"paper.{what}")
    found: dict[str, float] = {}
    for k, v in values.items():
        label = k if k in labels else by_value.get(k)
        if label is None:
            raise _err(values, k, f"paper.{what}.{k}",
                       f"not a level of this study; levels: {', '.join(map(str, by_value or labels))}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(values, k, f"paper.{what}.{k}", "must be a number")
        found[label] = float(v)
    return found


def _check_levels_build(study: Study, data: LocDict, train: LocDict, factors_node: LocDict,
                        base_dict: dict[str, Any]) -> None:
    """Every trial must be buildable before anything runs: resolve each level now, and report a failure at
    the recipe key it comes from, else at the factor whose path it names, else at ``factors``."""
    factors = study.factors
    for level in study.levels():
        try:
            _resolve_level(study, level)
        except (ArchError, MixnasError) as err:
            text = str(err).split(": ", 1)[-1]  # "train config: KEY must be ..." from the recipe
            key = text.split(" ", 1)[0]
            if str(err).startswith(("train (", "train config: ")) and key in train and not any(
                    p == f"train.{key}" for f in factors for p in f.paths):
                raise _err(train, key, f"train.{key}", text) from None
            culprit = next((f for f in factors for p in f.paths if not p.startswith("train.")
                            for where, _, _ in _expand(base_dict, p, sections=True) if where in str(err)), None)
            node, key = (factors_node, culprit.name) if culprit else (data, "factors")
            path = f"factors.{culprit.name}" if culprit else "factors"
            raise _err(node, key, f"{path} (level {level_label(level)})", str(err)) from None


# -- resolution ------------------------------------------------------------------------------------------------


def _resolve_level(study: Study, level: dict[str, Any]) -> tuple[ArchConfig, dict[str, Any]]:
    assert study.base_arch is not None
    arch_d = study.base_arch.to_dict()
    train_d = dict(study.train)
    apply_level(arch_d, train_d, study.factors, level)
    arch_d["name"] = f"{study.name}/{level_label(level)}"
    arch = ArchConfig.from_dict(arch_d, level_label(level))
    TrainConfig.from_dict({**train_d, "seed": 0}, f"train ({level_label(level)})")
    return arch, train_d


def resolve(study: Study) -> list[StudyTrial]:
    """One trial per (level, seed), in level-major order; every ArchConfig is validated."""
    trials = []
    for level in study.levels():
        arch, train_d = _resolve_level(study, level)
        for seed in study.seeds:
            recipe = TrainConfig.from_dict({**train_d, "seed": seed}).to_dict()
            payload = json.dumps({"arch": arch.digest(), "train": recipe, "task": study.task}, sort_keys=True)
            digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
            trials.append(StudyTrial(level_label(level), dict(level), seed, arch, recipe, digest))
    return trials


def materialise(study: Study, run_dir: str | Path) -> list[StudyTrial]:
    """Write ``study.yaml`` (the resolved study) and ``trials/KEY.yaml`` for every trial; nothing is trained.

    A run folder grows with its study: levels or seeds added later become new trials next to the finished
    ones. A trial whose definition changed (another architecture or recipe under the same key) is refused,
    since its result would no longer match its file; a corrected paper section or description is taken over."""
    run_dir = Path(run_dir)
    trials = resolve(study)
    changed = []
    for t in trials:
        path = run_dir / "trials" / f"{t.key}.yaml"
        if path.exists() and yaml.safe_load(path.read_text()) != _plain_yaml(t.to_dict(study)):
            changed.append(t.key)
    if changed:
        raise MixnasError(f"{run_dir}: trial {changed[0]} (and {len(changed) - 1} more) is defined differently by "
                          f"{study.source} than in this run folder; use another run folder")
    (run_dir / "trials").mkdir(parents=True, exist_ok=True)
    for t in trials:
        (run_dir / "trials" / f"{t.key}.yaml").write_text(yaml.safe_dump(t.to_dict(study), sort_keys=False))
    record = {**study.to_dict(), **({"plugins": recorded()} if recorded() else {})}  # reloaded by the report
    text = yaml.safe_dump({**record, "trials": [t.key for t in trials]}, sort_keys=False)
    (run_dir / "study.yaml").write_text(text)
    return trials


def _plain_yaml(data: dict[str, Any]) -> Any:
    """``data`` as it reads back from YAML (tuples become lists, and so on)."""
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))
