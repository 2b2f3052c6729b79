"""``mixnas search --resume``: a resumed search takes its settings from its record, and refuses a flag that
would change what its trials mean.

The record is ``OUT/search.yaml`` (what the search settled before launch: its settings, their resolved values and
the space's text), updated by ``OUT/search.resume.yaml`` (the trial count and execution settings as last resumed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mixnas.errors import MixnasError

# A resumed search takes its settings from its record (OUT/search.yaml). A flag given with --resume that differs
# from the record is refused: it would change what a trial means, or how the recorded search proceeds, and mix
# two searches in one study and one Pareto front. Only these may change on resume:
EXECUTION = ("trials", "concurrency", "resources", "address", "data_dir", "retries", "keep_checkpoints",
             "common_fidelity_front")
MEANING = ("space", "dataset", "objectives", "sampler", "sampler_options", "scheduler", "max_epochs", "grace",
           "eta", "fraction", "val_fraction", "bf16", "seed", "storage", "study_name", "table", "join")
# The EXECUTION settings under the names the record gives them (``retries`` is recorded as ``max_retries``).
EXECUTION_KEYS = ("trials", "concurrency", "resources", "address", "data_dir", "max_retries", "keep_checkpoints",
                  "common_fidelity_front")


def read_record(out: Path) -> dict:
    """The settings recorded by the search in ``out`` (``search.yaml``; its trial count and execution settings
    as last resumed, from ``search.resume.yaml``), checked enough to resume from."""
    from mixnas.yamlio import load_located

    meta = out / "search.yaml"
    if not meta.is_file():
        raise MixnasError(f"{out}: nothing to resume: no search.yaml (the record a search writes before launch); "
                          "start the search without --resume")
    doc = load_located(meta)
    if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict) or \
            not isinstance(doc.get("resolved"), dict):
        raise MixnasError(f"{meta}: not a search record (expected the mappings 'settings' and 'resolved'); "
                          "it was damaged: restore it, or start a new search in another --out")
    from mixnas.plugins import reload_recorded

    reload_recorded(doc.get("plugins"), f"{meta}: plugins")  # the run's --plugin ones too, before its space
    record = {**doc["settings"], "resolved": doc["resolved"], "space_doc": doc.get("space")}
    later = out / "search.resume.yaml"
    if later.is_file():
        resumed = load_located(later)
        if isinstance(resumed, dict) and isinstance(resumed.get("settings"), dict):
            record.update({k: resumed["settings"][k] for k in EXECUTION_KEYS if k in resumed["settings"]})
    return record


def recorded_value(record: dict, flag: str) -> object:
    """The recorded value of a command-line flag, in the flag's own terms."""
    res, train = record["resolved"], record.get("train") or {}
    return {"space": record.get("space"), "dataset": res.get("dataset"), "objectives": ",".join(res.get("objectives")
            or []), "sampler": record.get("sampler"), "scheduler": record.get("scheduler"),
            "max_epochs": res.get("max_epochs"), "grace": record.get("grace"), "eta": record.get("eta"),
            "fraction": train.get("fraction", (res.get("train") or {}).get("fraction")),
            "val_fraction": train.get("val_fraction", (res.get("train") or {}).get("val_fraction")),
            "bf16": bool(train.get("bf16", False)), "seed": record.get("seed"), "storage": res.get("storage"),
            "study_name": res.get("study_name"), "table": record.get("table"), "join": bool(record.get("join")),
            "trials": record.get("trials"),
            "concurrency": record.get("concurrency"), "address": record.get("address"),
            "data_dir": record.get("data_dir"), "retries": record.get("max_retries"),
            "keep_checkpoints": record.get("keep_checkpoints"),
            "common_fidelity_front": record.get("common_fidelity_front"),
            "resources": ",".join(f"{k}={v:g}" for k, v in (record.get("resources") or {}).items()),
            "sampler_options": dict(record.get("sampler_options") or {})}[flag]


def _same(flag: str, given: object, recorded: object, record: dict) -> bool:
    if flag in ("space", "table"):  # the same file, however its path is written
        return recorded is not None and Path(str(given)).resolve() == Path(str(recorded)).resolve()
    if flag == "sampler":  # "auto" was resolved: either name is the same search
        return given in (recorded, record["resolved"].get("sampler"))
    if flag == "objectives":
        from mixnas.space import parse_objectives

        objs = parse_objectives(str(given).split(","), lambda msg: MixnasError(f"--objectives: {msg}"))
        return ",".join(str(o) for o in objs) == recorded
    if flag == "storage":
        return _storage_key(str(given)) == _storage_key(str(recorded))
    if isinstance(recorded, float) or isinstance(given, float):
        return recorded is not None and abs(float(given) - float(recorded)) < 1e-12
    return given == recorded


def resume_args(args: argparse.Namespace, out: Path) -> Path:
    """Fill ``args`` from the record of the search in ``out``; refuse a flag whose meaning differs from it.
    Returns the record's space file, checked against the space the search recorded."""
    record = read_record(out)
    for flag in MEANING:
        given = getattr(args, flag, None)
        if given is None:
            continue
        recorded = recorded_value(record, flag)
        if not _same(flag, given, recorded, record):
            name = "sampler-option" if flag == "sampler_options" else flag.replace("_", "-")
            raise MixnasError(f"--resume: --{name} {given} differs from the search recorded in "
                              f"{out}/search.yaml ({flag}: {recorded}); a resumed search keeps what its trials "
                              f"mean. Drop the flag, or start a new search in another --out (only --trials and "
                              f"execution settings ({', '.join('--' + f.replace('_', '-') for f in EXECUTION)}) may "
                              "change)")
    for flag in (*MEANING, *EXECUTION):
        if getattr(args, flag, None) is None:  # as the record's settings say (None where the space decided)
            plain = flag in ("dataset", "objectives", "storage", "study_name")
            setattr(args, flag, record.get(flag) if plain else recorded_value(record, flag))
    space = Path(str(args.space))
    if not space.is_file():
        raise MixnasError(f"{space}: the search space recorded in {out}/search.yaml is gone; restore it, or pass "
                          "--space with the same file (its content must match the record)")
    _check_space_unchanged(space, record.get("space_doc"), out)
    return space


def _storage_key(url: str) -> str:
    """A storage URL with its file, if any, made absolute (``sqlite:///run/study.db`` is the same file as
    ``sqlite:////home/me/run/study.db`` when run from /home/me)."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def _check_space_unchanged(space: Path, recorded: object, out: Path) -> None:
    """A space file edited since the search began would change what later trials mean: refused, with the
    first YAML path that differs."""
    if not isinstance(recorded, dict) or not recorded:
        return  # an older record without the space's text: nothing to compare with
    from mixnas.space import load_space
    from mixnas.util import plain as _plain

    now = _plain(load_space(str(space)).raw)
    path = _first_difference(now, recorded)
    if path is not None:
        raise MixnasError(f"--resume: {space} differs from the space recorded in {out}/search.yaml at "
                          f"{path or 'its top level'}; a resumed search keeps what its trials mean: restore the "
                          "file, or start a new search in another --out")


def _first_difference(a: object, b: object, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{path}.{key}".lstrip(".")
            sub = _first_difference(a[key], b[key], f"{path}.{key}")
            if sub is not None:
                return sub.lstrip(".")
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path.lstrip(".")
        for i, (x, y) in enumerate(zip(a, b)):
            sub = _first_difference(x, y, f"{path}[{i}]")
            if sub is not None:
                return sub.lstrip(".")
        return None
    return None if a == b else path.lstrip(".")


