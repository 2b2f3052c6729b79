"""A user's mixer as one more level of a comparison study, at matched MACs (``study run --add-mixer``).

``mixnas study run studies/token_mixer_comparison.yaml --add-mixer my_mixer.py:NAME [--match width|depth]``
writes ``extended.yaml`` into the run folder: a study file that ``extends`` the comparison (under its name, so
a finished run of the comparison in that folder trains only the new level), loads the plugin (``plugins:``)
and adds the mixer as a level of the comparison's token-mixer factor (next to mixers added before), with
``match_macs: {target: median, by: width}`` (:mod:`mixnas.study_match`), so the new level costs what the
zoo's median costs. The run then goes on as any study run (resumable; the report has seeds, confidence
intervals, the power line and the match line), and the file in the run folder reproduces it:
``mixnas study run RUN/extended.yaml --out RUN --resume``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from mixnas.errors import MixnasError
from mixnas.mixer_space import find_mixer
from mixnas.plugins import Plugin
from mixnas.study import Factor, Study, load_study

FILE_NAME = "extended.yaml"


def mixer_factor(study: Study) -> tuple[Factor, str]:
    """The study's factor whose named levels set a token mixer section, and the path they set it at."""
    found = [(f, p) for f in study.factors for p in f.paths
             if f.settings is not None and p.split(".")[-1] == "token_mixer"]
    factors = {f.name: f for f, _ in found}
    if len(factors) != 1:
        raise MixnasError(f"{study.source}: --add-mixer needs one factor of named levels that set a token mixer "
                          "(like the token-mixer comparison's 'mixer'); found "
                          + (", ".join(factors) if factors else "none"))
    path = Counter(p for _, p in found).most_common(1)[0][0]
    return next(iter(factors.values())), path


def _plugin_ref(plugin: Plugin | None, run_dir: Path) -> list[str]:
    if plugin is None:
        return []
    if plugin.kind == "file" and plugin.file:
        return [os.path.relpath(plugin.file, run_dir.resolve())]
    return [plugin.spec]


def extended_study(study_file: str | Path, target: str, by: str, run_dir: Path) -> dict[str, Any]:
    """The extending study as plain data (paths relative to ``run_dir``), keeping the levels and plugins an
    earlier ``--add-mixer`` of the same study wrote to this run folder."""
    family, plugin = find_mixer(target, "token")  # the comparison's factor varies token mixers
    base = load_study(study_file)
    factor, path = mixer_factor(base)
    if family.name in factor.levels:
        raise MixnasError(f"{study_file}: {family.name!r} is already a level of factor {factor.name!r}")
    extends = os.path.relpath(Path(study_file).resolve(), run_dir.resolve())
    data = {"extends": extends, "name": base.name, **_earlier(run_dir, extends, factor.name)}
    data["plugins"] = list(dict.fromkeys(data.get("plugins", []) + _plugin_ref(plugin, run_dir)))
    if not data["plugins"]:
        del data["plugins"]
    levels = data["factors"][factor.name]["levels"]
    levels[family.name] = {path: {"name": family.name}, "match_macs": {"target": "median", "by": by}}
    return data


def _earlier(run_dir: Path, extends: str, factor: str) -> dict[str, Any]:
    """What an earlier ``--add-mixer`` wrote to ``run_dir`` for the same study (its added levels), else a new
    file: the same name as the study, so the study's finished trials in the folder count."""
    from mixnas.yamlio import load_located, plain

    path = run_dir / FILE_NAME
    fresh: dict[str, Any] = {"factors": {factor: {"levels": {}}}}
    if not path.is_file():
        return fresh
    data = plain(load_located(path, "an extended study YAML"))
    if not isinstance(data, dict) or data.get("extends") != extends:
        return fresh
    levels = ((data.get("factors") or {}).get(factor) or {}).get("levels")
    if not isinstance(levels, dict):
        return fresh
    plugins = data.get("plugins") if isinstance(data.get("plugins"), list) else []
    return {**({"plugins": plugins} if plugins else {}), "factors": {factor: {"levels": levels}}}


def add_mixer(study_file: str | Path, target: str, by: str = "width", out: str | Path | None = None,
              resume: bool = False) -> tuple[Path, Path]:
    """Write ``RUN/extended.yaml`` (see the module docstring); returns its path and the run folder (``out``,
    default the study's own ``runs/study-NAME``: a finished run of the comparison there trains only the new
    level with ``--resume``)."""
    run_dir = Path(out) if out else Path("runs") / f"study-{load_study(study_file).name}"
    if (run_dir / "study.yaml").exists() and not resume:
        raise MixnasError(f"{run_dir}: already holds a study run; pass --resume to continue it (only the added "
                          "level's trials are trained)")
    data = extended_study(study_file, target, by, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FILE_NAME
    header = (f"# {study_file} with {', '.join(data['factors'][next(iter(data['factors']))]['levels'])} added "
              f"at matched MACs, written by\n# `mixnas study run {study_file} --add-mixer {target} --match {by}`; "
              f"rerun or continue it with\n# `mixnas study run {path} --out {run_dir} --resume`.\n")
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path, run_dir
