"""mixnas-bench: tabular multi-fidelity benchmarks of a search space (plan, build, read, look up).

A benchmark table is a folder:

* ``build.yaml``: the build settings, the space (as loaded), the training recipe of each setting, the code
  version; written before the first job runs and the only source of the settings on a resumed build.
* ``space.yaml``: the space as loaded (``extends`` merged), so the folder stands alone.
* ``plan.csv``: every job of the build, materialised before launch (pycls style): ``key, setting, digest,
  seed, epochs, fraction``, in the order they run.
* ``table.jsonl.gz``: one JSON record per finished job, appended as a gzip member the moment the job ends
  (so the file is valid gzip after every job, and a crash mid-append loses at most that record: the reader
  drops a torn last member, the writer cuts it off before appending). A re-run job appends a newer record;
  the last record of a key wins.
* ``CARD.md``: settings, cost, noise, fidelity correlations (written by :mod:`mixnas.tabular_stats`).

Three settings of jobs (``BuildSettings``):

* ``table``: every architecture of the space, seed 0, ``epochs`` on ``fraction`` of the training split,
  with its latency (batch 1, one thread) and zero-cost proxies measured on the worker before training;
* ``noise``: ``noise_archs`` architectures (a seeded uniform sample) at seeds ``1 .. noise_seeds - 1``,
  the same recipe: with the table's seed 0 they give the seed standard deviation per epoch;
* ``long``: ``long_archs`` architectures (another seeded uniform sample) on all the training data for
  ``long_factor x epochs``: the reference a cheap fidelity's ranking is judged against.

Each record: ``key, setting, digest, seed, arch`` (the ArchConfig dict), ``train`` (the TrainConfig dict),
``params, macs`` (fvcore), ``status, reason, curve`` (per epoch: ``epoch, train_loss, train_top1, val_loss,
val_top1, train_time_s, eval_time_s``), ``wall_time_s``, ``measured`` (``latency_ms``,
``latency_iqr_ms``, ``proxies``; table jobs), ``worker`` (node, pid, threads) and ``code`` (mixnas version
and commit). Jobs run through :func:`mixnas.ray_io.run_trials`, the Ray machinery of searches and studies.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mixnas.config import ArchConfig
from mixnas.errors import MixnasError
from mixnas.tabular_stats import fidelity_stats
from mixnas.util import atomic_write_text
from mixnas.vocab import OutcomeStatus

TABLE_FILE, BUILD_FILE, PLAN_FILE = "table.jsonl.gz", "build.yaml", "plan.csv"
SPACE_FILE = "space.yaml"  # the space as resolved (extends merged), so the table folder stands alone
SETTINGS = ("table", "noise", "long")
FINAL = (OutcomeStatus.COMPLETED, OutcomeStatus.DIVERGED)  # a job that ended so is done: divergence is deterministic, and is data
CURVE_KEYS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "train_time_s", "eval_time_s")


@dataclass(frozen=True)
class BuildSettings:
    """What a benchmark build trains (see the module docstring); saved in ``build.yaml``."""

    space: str
    epochs: int = 8
    fraction: float = 0.1
    noise_archs: int = 50
    noise_seeds: int = 3
    long_archs: int = 30
    long_factor: int = 4
    seed: int = 0  # picks the noise and long architectures and the order of the table's jobs
    threads: int = 1  # torch threads per job (one job per core by default)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields on top of the space's task.train

    def __post_init__(self) -> None:
        problem = settings_problem(asdict(self))
        if problem is not None:
            raise MixnasError(f"bench build: --{problem[0].replace('_', '-')} {problem[1]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# The range of each integer build setting: a table folder is untrusted input (its build.yaml), and the card
# loops over epochs and long-run epochs.
SETTING_BOUNDS = {"epochs": (1, 1000), "noise_archs": (0, 10**6), "noise_seeds": (1, 1000), "long_archs": (0, 10**6),
                  "long_factor": (1, 20), "seed": (0, 2**31 - 1), "threads": (1, 1024)}


def settings_problem(data: Any) -> tuple[str, str] | None:
    """The first build setting in ``data`` that is out of range: ``(name, what is allowed)``, or None."""
    for name, (lo, hi) in SETTING_BOUNDS.items():
        v = data.get(name)
        if name in data and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            word = "at least 1" if lo == 1 and v == 0 else "not negative" if isinstance(v, int) and v < 0 else \
                f"an integer from {lo} to {hi}"
            return name, f"must be {word}, found {v!r:.40}"
    v = data.get("fraction")
    if "fraction" in data and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0):
        return "fraction", f"must be in (0, 1], found {v!r:.40}"
    if "space" in data and not isinstance(data["space"], str):
        return "space", f"must be a file path, found {type(data['space']).__name__}"
    if "train" in data and not isinstance(data["train"], dict):
        return "train", f"must be a mapping of TrainConfig fields, found {type(data['train']).__name__}"
    return None


@dataclass(frozen=True)
class Job:
    """One training run of the build."""

    key: str
    setting: str
    digest: str
    seed: int
    epochs: int
    fraction: float
    arch: ArchConfig = field(compare=False, repr=False)


# -- planning ----------------------------------------------------------------------------------------------


def space_archs(space: Any) -> list[ArchConfig]:
    """Every architecture of a discrete space, sorted by digest (a stable order, whatever the file's)."""
    try:
        archs = {a.digest(): a for a in space.grid()}
    except MixnasError as err:
        raise MixnasError(f"{space.path}: a benchmark table covers every architecture of its space, so the "
                          f"space must be discrete: {err}") from None
    if not archs:
        raise MixnasError(f"{space.path}: the space holds no valid architecture")
    return [archs[d] for d in sorted(archs)]


def plan_jobs(settings: BuildSettings, archs: list[ArchConfig]) -> list[Job]:
    """The build's jobs in the order they run: the table (shuffled, so any finished prefix is a uniform
    sample of the space), then the extra noise seeds, then the long runs."""
    rng = random.Random(settings.seed)
    order = list(range(len(archs)))
    rng.shuffle(order)
    noise = sorted(rng.sample(range(len(archs)), min(settings.noise_archs, len(archs))))
    long = sorted(random.Random(settings.seed + 1).sample(range(len(archs)), min(settings.long_archs, len(archs))))
    jobs = [_job("table", archs[i], 0, settings.epochs, settings.fraction) for i in order]
    jobs += [_job("noise", archs[i], s, settings.epochs, settings.fraction)
             for s in range(1, settings.noise_seeds) for i in noise]
    jobs += [_job("long", archs[i], 0, settings.epochs * settings.long_factor, 1.0) for i in long]
    return jobs


def _job(setting: str, arch: ArchConfig, seed: int, epochs: int, fraction: float) -> Job:
    digest = arch.digest()
    return Job(f"{setting}-{digest}-s{seed}", setting, digest, seed, epochs, fraction, arch)


def train_config(settings: BuildSettings, space: Any, job: Job) -> dict[str, Any]:
    """The TrainConfig dict of one job: the space's ``task.train``, the build's overrides, then the job's
    epochs, data fraction and seed."""
    from mixnas.train import TrainConfig

    cfg = {**dict(space.task.train), **settings.train, "epochs": job.epochs, "fraction": job.fraction,
           "seed": job.seed}
    return TrainConfig.from_dict(cfg, where="bench build train config").to_dict()


def write_plan(out: Path, jobs: list[Job]) -> None:
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["key", "setting", "digest", "seed", "epochs", "fraction"])
    for j in jobs:
        w.writerow([j.key, j.setting, j.digest, j.seed, j.epochs, j.fraction])
    atomic_write_text(out / PLAN_FILE, text.getvalue())


# -- the table file: gzip members appended one record at a time ---------------------------------------------


MAX_MEMBER_BYTES = 16 << 20  # one record decompressed (a record is a few kB)
MAX_TABLE_BYTES = 512 << 20  # the whole table decompressed (the shipped one is about 3 MB)


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a table file and the byte offset where its last complete gzip member ends (a torn
    member after it, from a crash mid-append, is dropped). The file is untrusted: a member that is not gzip
    after the first, one that decompresses past :data:`MAX_MEMBER_BYTES`, a record that is not a JSON
    object with a ``key``, are one error line naming the file and the record."""
    from mixnas.yamlio import read_bytes

    data = read_bytes(path, "a mixnas-bench table, gzip", max_bytes=MAX_TABLE_BYTES)
    records: list[dict[str, Any]] = []
    pos = good = total = 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        try:
            text = d.decompress(data[pos:], MAX_MEMBER_BYTES)
        except zlib.error as err:
            if good == 0 and not records:
                raise MixnasError(f"{path}: not a mixnas-bench table (gzip: {err})") from None
            break
        if d.unconsumed_tail:
            raise MixnasError(f"{path}: record {len(records) + 1} decompresses to more than "
                              f"{MAX_MEMBER_BYTES >> 20} MB; a record is a few kB")
        total += len(text)
        if total > MAX_TABLE_BYTES:
            raise MixnasError(f"{path}: decompresses to more than {MAX_TABLE_BYTES >> 20} MB; not a mixnas-bench table")
        if not d.eof:
            break  # a torn last member
        used = len(data) - pos - len(d.unused_data)
        for line in text.decode("utf-8", "replace").splitlines():
            if line.strip():
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, RecursionError, ValueError) as err:
                    why = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply or a number out of range"
                    raise MixnasError(f"{path}: record {len(records) + 1}: not JSON ({why})") from None
                if not isinstance(rec, dict) or "key" not in rec:
                    raise MixnasError(f"{path}: record {len(records) + 1}: expected an object with a 'key'")
                records.append(rec)
        pos += used
        good = pos
    return records, good


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as its own gzip member and flush it to disk (a torn tail is cut off first)."""
    if path.exists():
        _, good = read_records(path)
        if good < path.stat().st_size:
            with open(path, "r+b") as fh:
                fh.truncate(good)
    blob = gzip.compress((json.dumps(record, separators=(",", ":")) + "\n").encode(), mtime=0)
    with open(path, "ab") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())


def _number(v: Any, finite: bool = True) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (not finite or math.isfinite(v))


def _check_record(r: dict[str, Any], path: Path, i: int) -> None:
    """A record must have the shape the table's readers use (the card, a replayed search); a file edited or
    damaged by hand is one error line naming the record and the field."""

    def bad(what: str, allowed: str) -> MixnasError:
        found = r
        for part in what.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return MixnasError(f"{path}: record {i} ({str(r.get('key'))[:60]}): {what}: expected {allowed}, found "
                           f"{json.dumps(found, default=str)[:60]}")

    for name in ("key", "digest", "status"):
        if not isinstance(r.get(name), str):
            raise bad(name, "text")
    if r.get("setting") not in SETTINGS:
        raise bad("setting", f"one of {', '.join(SETTINGS)}")
    seed = r.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise bad("seed", "an integer from 0 to 2**31 - 1")
    for name in ("params", "macs"):
        if not _number(r.get(name)) or r[name] < 0:
            raise bad(name, "a non-negative number")
    if r.get("wall_time_s") is not None and not _number(r["wall_time_s"]):
        raise bad("wall_time_s", "a finite number or null")
    arch = r.get("arch")
    stages = arch.get("stages") if isinstance(arch, dict) else None
    if not isinstance(stages, list) or not stages or not all(
            isinstance(st, dict) and isinstance(st.get("token_mixer"), dict)
            and isinstance(st["token_mixer"].get("name"), str) for st in stages):
        raise bad("arch", "an ArchConfig mapping (stages, each with a token_mixer and its name)")
    if not isinstance(r.get("train"), dict):
        raise bad("train", "a TrainConfig mapping")
    if r["setting"] == "table":
        for name in ("fraction", "val_fraction"):
            v = r["train"].get(name)
            if not _number(v) or not 0 < v <= 1:
                raise bad(f"train.{name}", "a number in (0, 1]")
    curve = r.get("curve")
    if curve is None and r["status"] != OutcomeStatus.COMPLETED:
        curve = []
    if not isinstance(curve, list) or not all(isinstance(row, dict) for row in curve):
        raise bad("curve", "a list of per-epoch mappings")
    for row in curve:
        for k in CURVE_KEYS:
            if k in row and row[k] is not None and not _number(row[k], finite=False):
                raise bad("curve", f"numbers for {k}")
    measured = r.get("measured")
    if measured is not None:
        if not isinstance(measured, dict):
            raise bad("measured", "a mapping (latency_ms, proxies) or null")
        if measured.get("latency_ms") is not None and not _number(measured["latency_ms"]):
            raise bad("measured.latency_ms", "a finite number or null")
        proxies = measured.get("proxies")
        if proxies is not None and not (isinstance(proxies, dict) and all(
                v is None or _number(v, finite=False) for v in proxies.values())):
            raise bad("measured.proxies", "a mapping of proxy names to numbers")


class Table:
    """A benchmark table read into memory: ``records`` (the last one per key), the build's settings and
    space, and look-ups by digest."""

    def __init__(self, path: str | Path):
        from mixnas.yamlio import LocatedError, is_dir, is_file, load_located

        p = Path(path)
        self.dir = p if is_dir(p) else p.parent
        self.file = self.dir / TABLE_FILE if is_dir(p) else p
        if not is_file(self.file):
            raise MixnasError(f"{path}: no mixnas-bench table here (expected {TABLE_FILE}; build one with "
                              "`mixnas bench build SPACE --out DIR`)")
        build = self.dir / BUILD_FILE
        if not is_file(build) and not is_dir(build):
            raise MixnasError(f"{self.dir}: {BUILD_FILE} is missing beside {self.file.name}")
        self.build = load_located(build, "the table's build settings, build.yaml") or {}
        if not isinstance(self.build, dict) or not isinstance(self.build.get("settings"), dict):
            raise LocatedError((str(build), 1), "", "expected a mapping with a 'settings' mapping (the build's "
                                                    "settings, as `mixnas bench build` writes them)")
        if self.build.get("jobs", {}) is None:
            del self.build["jobs"]  # the card reads the planned job counts from it
        for key, kind in (("jobs", dict), ("architectures", int)):
            if self.build.get(key) is not None and (isinstance(self.build[key], bool)
                                                    or not isinstance(self.build[key], kind)):
                raise LocatedError(self.build.loc(key), key, "expected " + ("a mapping of settings to job counts"
                                                                            if kind is dict else "an integer"))
        settings = self.build["settings"]
        problem = settings_problem(settings) or (None if "space" in settings else
                                                 ("space", "missing: the space file the table was built from"))
        if problem is not None:
            raise LocatedError(settings.loc(problem[0]), f"settings.{problem[0]}", problem[1])
        self.settings = BuildSettings.from_dict(settings)
        records, _ = read_records(self.file)
        last: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(records, 1):
            _check_record(r, self.file, i)
            last[r["key"]] = r
        self.records = list(last.values())
        self._by: dict[tuple[str, str, int], dict[str, Any]] = {
            (r["setting"], r["digest"], int(r["seed"])): r for r in self.records}

    def get(self, digest: str, setting: str = "table", seed: int = 0) -> dict[str, Any] | None:
        return self._by.get((setting, digest, seed))

    def completed(self, setting: str = "table") -> list[dict[str, Any]]:
        return [r for r in self.records if r["setting"] == setting and r.get("status") == OutcomeStatus.COMPLETED]

    def arch_records(self) -> dict[str, dict[str, Any]]:
        """Digest -> the ``table`` record at seed 0 (what a simulated search replays)."""
        return {r["digest"]: r for r in self.records if r["setting"] == "table" and int(r["seed"]) == 0}

    def build_train(self) -> dict[str, Any]:
        """The TrainConfig dict of the table's jobs (seed 0), as the build resolved it."""
        for r in self.records:
            if r["setting"] == "table":
                return dict(r["train"])
        raise MixnasError(f"{self.file}: the table has no record of its main setting yet")

    @property
    def epochs(self) -> int:
        return int(self.settings.epochs)

    def recommended(self) -> dict[str, Any]:
        """The fidelity settings the table's own rank correlations recommend (``grace``, ``max_epochs``;
        :func:`mixnas.tabular_stats.recommend`): what ``mixnas search --table`` uses by default."""
        return fidelity_stats(self)["recommendation"]

    def space(self) -> Any:
        """The space the table was built from (as saved in ``build.yaml``)."""
        from mixnas.space import load_space

        return load_space(self.dir / SPACE_FILE)


# -- building -------------------------------------------------------------------------------------------------


def record_of(job: Job, train: dict[str, Any], outcome: Any, cost: Any) -> dict[str, Any]:
    """The table record of a finished job."""
    from mixnas.provenance import code_version

    curve = [{k: row[k] for k in CURVE_KEYS if k in row} for row in outcome.curve]
    info = outcome.info or {}
    return {"key": job.key, "setting": job.setting, "digest": job.digest, "seed": job.seed,
            "arch": job.arch.to_dict(), "train": train, "params": cost.params, "macs": cost.macs,
            "status": outcome.status, "reason": outcome.reason, "curve": curve,
            "wall_time_s": round(float(outcome.wall_time_s), 3), "measured": info.get("measured", {}),
            "worker": {k: info[k] for k in ("node_id", "pid", "plugin_sha256") if k in info}, "code": code_version(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _resolve_settings(out: Path, settings: BuildSettings, given: set[str], space: Any) -> BuildSettings:
    """A new build writes its settings; a resumed one takes them from ``build.yaml`` and refuses a flag
    that changes what a job means."""
    path = out / BUILD_FILE
    if not path.exists():
        return settings
    saved = BuildSettings.from_dict((yaml.safe_load(path.read_text()) or {}).get("settings", {}))
    for name in sorted(given):
        if getattr(saved, name) != getattr(settings, name) and name != "space":
            raise MixnasError(f"{out}: this build was started with --{name.replace('_', '-')} "
                              f"{getattr(saved, name)!r}; it resumes with its recorded settings (found "
                              f"{getattr(settings, name)!r}); use another --out for a different table")
    return saved


def build(settings: BuildSettings, out: str | Path, *, given: set[str] = frozenset(), address: str | None = None,
          limit: int | None = None, only: tuple[str, ...] = SETTINGS, data_dir: str | None = None,
          log: Callable[[str], None] = print) -> dict[str, int]:
    """Plan and run (or resume) a benchmark build in ``out``; returns counts of jobs by state.

    ``limit`` stops after that many jobs were launched (a build in parts); ``only`` restricts the settings
    run this time. Finished jobs (completed, or diverged: a seeded run diverges again) are never run again;
    failed ones (a worker error, a time-out) are retried."""
    from mixnas.space import load_space

    out = Path(out)
    space = load_space(settings.space)
    out.mkdir(parents=True, exist_ok=True)
    settings = _resolve_settings(out, settings, set(given), space)
    _check_same_space(out, settings, space)
    archs = space_archs(space)
    jobs = plan_jobs(settings, archs)
    if not (out / BUILD_FILE).exists():
        _start_build(out, settings, space, len(archs), jobs)
    write_plan(out, jobs)
    done = _finished_keys(out / TABLE_FILE)
    pending = [j for j in jobs if j.key not in done and j.setting in only]
    if limit is not None:
        pending = pending[:max(0, limit)]
    log(f"bench build {out}: {len(archs)} architectures, {len(jobs)} jobs ({len(done)} done, "
        f"{len(pending)} to run now)")
    if not pending:
        return {"done": len(done), "ran": 0, "failed": 0}
    return _run_jobs(out, settings, space, pending, len(done), address=address, data_dir=data_dir, log=log)


def _check_same_space(out: Path, settings: BuildSettings, space: Any) -> None:
    """Refuse to resume a build with a space other than the one it started with (saved in ``space.yaml``)."""
    saved_space = out / SPACE_FILE
    if (out / BUILD_FILE).exists() and saved_space.exists() \
            and yaml.safe_load(saved_space.read_text()) != json.loads(json.dumps(space.raw)):
        raise MixnasError(f"{settings.space}: the space differs from the one this build started with "
                          f"({saved_space}); a table covers one space: restore it or use another --out")


def _start_build(out: Path, settings: BuildSettings, space: Any, n_archs: int, jobs: list[Job]) -> None:
    """A new build's folder: the space as loaded, then ``build.yaml`` (settings, planned job counts, code)."""
    from mixnas.provenance import code_version

    raw = json.loads(json.dumps(space.raw))
    (out / SPACE_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
    doc = {"settings": settings.to_dict(), "space_file": SPACE_FILE, "architectures": n_archs,
           "jobs": {s: sum(1 for j in jobs if j.setting == s) for s in SETTINGS}, "code": code_version(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(out / BUILD_FILE, yaml.safe_dump(doc, sort_keys=False))


def _finished_keys(table: Path) -> set[str]:
    """The keys of the jobs the table already holds a final record of (never run again)."""
    if not table.exists():
        return set()
    return {r["key"] for r in read_records(table)[0] if r.get("status") in FINAL}


def _price(pending: list[Job]) -> dict[str, Any]:
    """Digest -> fvcore cost of every pending architecture (counts are cached on disk by digest)."""
    from tqdm import tqdm

    from mixnas.complexity import complexity

    bar = tqdm(total=len(pending), desc="pricing", unit="arch", leave=False, disable=None)
    costs = {}
    for j in pending:
        costs[j.digest] = costs.get(j.digest) or complexity(j.arch)
        bar.update(1)
    bar.close()
    return costs


def _trial_configs(pending: list[Job], settings: BuildSettings, space: Any,
                   data_dir: str | None) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Key -> the trial config :func:`mixnas.ray_io.run_trials` runs, and key -> the job's TrainConfig dict."""
    from mixnas.plugins import shipped
    from mixnas.trial import MEASURES

    task = space.task
    configs, trains, ship = {}, {}, shipped()  # the space's plugins: the workers build its mixers too
    for n, j in enumerate(pending):
        trains[j.key] = train_config(settings, space, j)
        configs[j.key] = {"arch": j.arch.to_dict(), "train": trains[j.key], "dataset": task.dataset,
                          "data_dir": data_dir, "digest": j.digest, "number": n, "threads": settings.threads,
                          "gpu": 0.0, "measure": list(MEASURES) if j.setting == "table" else [],
                          "plugins": ship}
    return configs, trains


def _run_jobs(out: Path, settings: BuildSettings, space: Any, pending: list[Job], n_done: int, *,
              address: str | None, data_dir: str | None, log: Callable[[str], None]) -> dict[str, int]:
    """Price and run the pending jobs, appending each record to the table the moment its job ends."""
    from mixnas.ray_io import run_trials

    table = out / TABLE_FILE
    costs = _price(pending)
    configs, trains = _trial_configs(pending, settings, space, data_dir)
    by_key = {j.key: j for j in pending}
    counts = {"done": n_done, "ran": 0, "failed": 0}
    t0 = time.time()

    def on_done(key: str, outcome: Any) -> None:
        job = by_key[key]
        append_record(table, record_of(job, trains[key], outcome, costs[job.digest]))
        counts["ran"] += 1
        counts["failed"] += outcome.status not in FINAL
        last = outcome.curve[-1].get("val_top1") if outcome.curve else None
        left = (time.time() - t0) / counts["ran"] * (len(pending) - counts["ran"])
        log(f"[{counts['ran']}/{len(pending)}] {key}: {outcome.status}"
            + (f", top1 {last:.2f}" if isinstance(last, float) else "")
            + f", {outcome.wall_time_s:.0f} s; about {left / 60:.0f} min left")

    run_trials(configs, on_done, out=out, resources={"cpu": settings.threads, "gpu": 0.0}, address=address,
               log=log)
    return counts


__all__ = ["BuildSettings", "Job", "SETTINGS", "Table", "append_record", "build", "plan_jobs", "read_records",
           "record_of", "space_archs", "train_config"]
