"""The search driver: the Optuna side of ``mixnas search`` (no Ray here; :mod:`mixnas.ray_io` runs trials).

:class:`Search` owns the study, the durable record. ``next_candidate()`` asks Optuna, samples the space
(define-by-run), runs the cheap checks and de-duplicates by digest before anything is trained:

* an invalid candidate is told PRUNED with ``status=invalid`` and every budget violated by one unit;
* an infeasible one PRUNED with ``status=infeasible`` and its constraint values (never trained);
* a digest already recorded reuses that record (``duplicate_of``) instead of training again; a digest that
  is training right now waits for it. Re-used records are free, so they are not counted in ``--trials``
  (which counts architectures trained); the search stops when ``MAX_REPEAT_STREAK`` proposals in a row
  repeat recorded architectures (the sampler has converged, or a small space is exhausted).

``finish(number, outcome)`` tells the result: COMPLETE only when the trial trained the full ``max_epochs``
with finite objectives; PRUNED (``fidelity`` = epochs reached) when a scheduler stopped it; FAIL with a
``fail_reason`` for NaN / missing objectives, divergence or a worker that kept dying. Every record carries the
ArchConfig dict, digest, seed, fidelity, per-epoch curve, objectives, wall time and code version.
After each finished trial ``trials.csv`` and ``pareto.yaml`` are rewritten. On ``resume`` the trials a crash
left RUNNING are failed and their parameters re-queued.

Several drivers may search one study at once (``join``: Optuna's distributed optimisation, each driver with
its own run folder and Ray, the study in a storage they all reach). Every trial records the ``driver`` that
asked it (an id kept in the run folder's ``search.yaml``); a joined driver counts only its own trials in
``--trials``, re-queues only its own on ``resume``, seeds its sampler from ``--seed`` and its id (drivers
with the same ``--seed`` do not propose the same sequence; training still uses ``--seed``), and before
training an architecture it looks it up among every driver's finished records (``duplicate_of`` across
drivers). One that another driver is training at that moment is trained again (a record of its own).

This module is also callable: ``mixnas.search(space, ...)`` is the Python API's :func:`mixnas.api.search`
(``mixnas/__init__.py`` says how), which builds a :class:`Search` from the command's settings and runs it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixnas import optuna_io, plugins
from mixnas.checks import CandidateCheck, check_candidate
from mixnas.config import ArchConfig
from mixnas.errors import MixnasError
from mixnas.pareto import pareto_front
from mixnas.provenance import code_version
from mixnas.runs import FINISHED, front_trials, lock_run_folder, trial_counts, trial_fields
from mixnas.space import InvalidCandidate, LaunchPlan, MixerNode, Space, launch_check, load_space
from mixnas.trial import Candidate, Outcome, load_data
from mixnas.util import atomic_write_text, duration, is_finite, plain, short_number
from mixnas.vocab import COSTS, REUSABLE, SKIPPED, OutcomeStatus, Status, search_values

SCHEDULERS = ("moasha", "asha", "none")
MAX_SKIPPED_PER_TRIAL = 20  # give up when the space yields this many infeasible candidates per trial asked
MAX_REPEAT_STREAK = 100  # give up when this many proposals in a row repeat recorded architectures


@dataclass
class SearchSettings:
    """Everything ``mixnas search`` was asked for; written to ``search.yaml`` before launch."""

    space: str
    out: str
    dataset: str | None = None  # None: the space's task
    data_dir: str | None = None
    trials: int = 40  # architectures trained; infeasible / invalid candidates and re-used repeats are not counted
    objectives: str | None = None  # "top1:max,macs:min"; None: the space's
    sampler: str = "auto"  # auto: tpe for conditional spaces, nsga2 for flat ones
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the Optuna sampler
    scheduler: str = "moasha"
    max_epochs: int | None = None  # None: the space's task.train.epochs (or the trainer's default)
    grace: int = 1
    eta: float = 2.0  # the CLI default (QUICKSTART)
    concurrency: int = 2
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    address: str | None = None
    storage: str | None = None  # None: sqlite in the run folder
    study_name: str | None = None  # None: the run folder's name
    resume: bool = False
    join: bool = False  # one of several drivers of one study (needs storage and study_name)
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides on top of the space's
    max_retries: int = 2  # per trial, when its worker process dies
    common_fidelity_front: bool = False  # also write pareto_common_fidelity.yaml (PRUNED trials included)
    keep_checkpoints: bool = False  # keep the weights of COMPLETE trials (for ``mixnas export``)
    table: str | None = None  # a mixnas-bench table: replay the search on it (mixnas.simulate), no training
    max_sim_s: float | None = None  # with a table: stop proposing once the simulated clock passes this
    record: bool = True  # False: no files (search.log, trials.csv, pareto) while running (benchmarks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_resources(text: str) -> dict[str, float]:
    out = {"cpu": 1.0, "gpu": 0.0}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in ("cpu", "gpu"):
            raise MixnasError(f"--resources: expected cpu=N,gpu=F, found {part!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise MixnasError(f"--resources: {key} must be a number, found {value!r}") from None
        if out[key] < 0:
            raise MixnasError(f"--resources: {key} must not be negative")
    return out


def is_conditional(space: Space) -> bool:
    """Whether some parameter exists only under a choice (a mixer family with several branches)."""
    for f in space.fields.values():
        for node in f.unique():
            if isinstance(node, MixerNode) and node.family_slot is not None and not node.family_slot.domain.fixed:
                if sum(1 for b in node.branches.values() if any(not s.domain.fixed for s in b.values())) > 0:
                    return True
    return False


def grid_of(space: Space) -> dict[str, list[Any]]:
    if is_conditional(space):
        raise MixnasError(f"{space.path}: --sampler grid needs a flat space (this one has conditional parameters)")
    grid = {}
    for slot in space.params():
        vals = slot.domain.values()
        if vals is None:
            raise MixnasError(f"{space.path}: --sampler grid: {slot.name} is continuous")
        grid[slot.name] = list(vals)
    return grid


def costs_of(check: CandidateCheck) -> dict[str, Any]:
    """A candidate's cost metrics (MACs, params, latency) from its checks, by metric name."""
    return {m: getattr(check, m) for m in COSTS}


def prelaunch(settings: SearchSettings, space: Space) -> tuple[LaunchPlan, str]:
    """Everything a search checks before it creates anything: the space's task through
    :func:`mixnas.space.launch_check` (the very function ``mixnas space check`` runs), then the search's own
    settings. Returns the plan and the sampler's name; ``mixnas search --dry-run`` stops here."""
    from mixnas.errors import UnknownNameError

    s = settings
    train = {**s.train, **({"epochs": s.max_epochs} if s.max_epochs is not None else {})}
    plan = launch_check(space, dataset=s.dataset, objectives=s.objectives, train=train, seed=s.seed)
    if s.scheduler not in SCHEDULERS:
        raise UnknownNameError("scheduler", s.scheduler, SCHEDULERS)
    sampler = ("tpe" if is_conditional(space) else "nsga2") if s.sampler == "auto" else s.sampler
    if sampler not in optuna_io.SAMPLERS:
        raise UnknownNameError("sampler", sampler, optuna_io.SAMPLERS + ("auto",))
    if sampler == "grid":
        grid_of(space)
    if s.trials < 1:
        raise MixnasError("--trials must be at least 1")
    return plan, sampler


class Search:
    """The study and its bookkeeping (see the module docstring)."""

    def __init__(self, settings: SearchSettings, space: Space | None = None,
                 log: Callable[[str], None] | None = None, check_data: bool = False):
        self.settings = s = settings
        self.space = space or load_space(s.space)
        self.shipped_plugins = plugins.shipped()  # the space's and --plugin's, as loaded now: every trial trains this code
        self.out = Path(s.out)
        self.log_fn = log
        plan, self.sampler_name = prelaunch(s, self.space)
        sampler = self.sampler_name
        self.dataset, self.objectives, self.input = plan.dataset, plan.objectives, plan.input
        self.directions = [o.direction for o in self.objectives]
        self.train_cfg, self.max_epochs = plan.train, plan.train["epochs"]
        self.need_latency = any(o.metric == "latency_ms" for o in self.objectives)
        self.threads = max(1, int(s.resources.get("cpu", 1)))

        if check_data:  # a missing dataset fails here, before any study or folder exists
            self._check_data()
        self._lock = None
        if s.record:
            self.out.mkdir(parents=True, exist_ok=True)
        if s.resume and not s.join and self._recorded().get("settings", {}).get("join"):
            s.join = True  # a driver of a shared study resumes as one
        if s.join and not (s.storage and s.study_name):
            raise MixnasError("--join needs --storage (a study every driver reaches: postgresql://..., "
                              "mysql+pymysql://... or journal:PATH on a shared file system) and --study-name")
        self.study_name = s.study_name or self.out.resolve().name
        self.storage_url = s.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"
        if not s.resume and (self.out / "search.yaml").exists():
            raise MixnasError(f"{self.out}: a search already ran here; pass --resume to continue it or choose "
                              "another --out")
        self.driver = self._driver_id()
        # joined drivers seed their samplers apart: the same seed would propose the same architectures
        self.sampler_seed = s.seed if not s.join else int(hashlib.sha256(
            f"{s.seed}:{self.driver}".encode()).hexdigest()[:8], 16) % 2**31
        storage = optuna_io.storage_for(self.storage_url)
        self.study = optuna_io.open_study(
            storage, self.study_name, self.directions,
            optuna_io.make_sampler(sampler, self.sampler_seed, conditional=is_conditional(self.space),
                                   grid=grid_of(self.space) if sampler == "grid" else None,
                                   options=s.sampler_options),
            s.resume, join=s.join)
        self.checker: Callable[[ArchConfig], CandidateCheck] | None = None  # None: count (a table sets its own)
        self.write_every_s = 0.0  # outputs after a finished trial at most this often (a replay sets 1 s)
        self._written_at = -math.inf
        self._written_front: list[int] | None = None
        self.live: dict[int, Any] = {}  # number -> optuna.Trial being trained
        self.proposed: dict[int, Any] = {}  # number -> optuna.Trial asked, its checks not yet recorded
        self.ready: set[int] = set()  # live trials prepared ahead, not yet handed to a worker
        self.checkpoint_dir = str((self.out / "checkpoints").resolve()) if s.keep_checkpoints else None
        self.training: dict[str, int] = {}  # digest -> number
        self.waiting: dict[str, list[Any]] = {}  # digest -> duplicate Trials waiting for it
        self.by_digest: dict[str, Any] = {}  # digest -> FrozenTrial with a reusable result
        self.checks: dict[str, CandidateCheck] = {}
        self.counted = 0
        self.started = time.time()
        self.finished_here = 0
        self.requeued = 0
        self.skipped = 0  # infeasible / invalid candidates: recorded, not counted in --trials
        self.repeats = 0  # proposals that re-used a recorded architecture: recorded, not counted in --trials
        self.repeat_streak = 0  # ... of them in a row, since the last architecture sent to train
        for t in self.study.get_trials(deepcopy=False):
            if t.state.name in FINISHED and not t.user_attrs.get("requeued") and self._mine(t, counting=True):
                if t.user_attrs.get("status") in SKIPPED:
                    self.skipped += 1
                elif "duplicate_of" in t.user_attrs:
                    self.repeats += 1
                else:
                    self.counted += 1
            self._remember(t)
        self.counted_at_start = self.counted
        if s.record:  # before anything is changed: the study (re-queues) and the run folder's files
            self._lock = lock_run_folder(self.out)
        if s.resume:
            self._requeue_running()
        if s.record:
            self._write_settings()

    def _driver_id(self) -> str:
        """This driver's id: kept in the run folder's ``search.yaml`` (a resumed driver is the same driver),
        new otherwise (a run folder from before drivers were recorded gets a new one)."""
        found = (self._recorded().get("resolved") or {}).get("driver") if self.settings.resume else None
        return str(found) if found else uuid.uuid4().hex[:12]

    def _recorded(self) -> dict[str, Any]:
        """The run folder's ``search.yaml`` (empty when there is none)."""
        meta = self.out / "search.yaml"
        doc = yaml.safe_load(meta.read_text()) if meta.is_file() else None
        return doc if isinstance(doc, dict) else {}

    def _mine(self, t: Any, counting: bool = False) -> bool:
        """Whether a trial belongs to this driver: recorded by it, or (without ``join``) recorded before
        drivers were (a study of one driver). ``counting``: without ``join``, every trial of the study counts
        in ``--trials``, as before several drivers could share a study."""
        driver = t.user_attrs.get("driver")
        if not self.settings.join:
            return counting or driver in (None, self.driver)
        return driver == self.driver

    def _refresh(self) -> None:
        """Learn the records other drivers finished since (a joined study): repeats of them are re-used."""
        TS = optuna_io.TrialState
        for t in self.study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED)):
            self._remember(t)

    def _check_data(self) -> None:
        from mixnas.optuna_io import sample_candidates
        from mixnas.train import TrainConfig

        for _, arch, _ in sample_candidates(self.space, 1, seed=0, task=self.input):
            if arch is not None:
                load_data(self.dataset, self.settings.data_dir, arch, TrainConfig.from_dict(self.train_cfg))

    # -- records ---------------------------------------------------------------------------------------

    def _remember(self, t: Any) -> None:
        if t.user_attrs.get("status") in REUSABLE and "duplicate_of" not in t.user_attrs:
            self.by_digest.setdefault(t.user_attrs["digest"], t)

    def _requeue_running(self) -> None:
        TS = optuna_io.TrialState
        for t in self.study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
            if not self._mine(t):  # another driver's trial, training right now
                continue
            optuna_io.set_attrs(self.study, t, {
                "requeued": True, "status": Status.FAILED.value,
                "fail_reason": "left RUNNING by a crashed driver; its parameters were re-queued"})
            self.study.tell(t.number, state=TS.FAIL)
            if t.params:
                self.study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
            self.requeued += 1
        if self.requeued:
            self.log(f"resume: {self.requeued} trial(s) left RUNNING by a crash were failed and re-queued")

    def _write_settings(self) -> None:
        doc = {"settings": self.settings.to_dict(),
               "resolved": {"dataset": self.dataset, "sampler": self.sampler_name,
                            "objectives": [str(o) for o in self.objectives], "max_epochs": self.max_epochs,
                            "train": self.train_cfg, "study_name": self.study_name, "storage": self.storage_url,
                            "driver": self.driver, "sampler_seed": self.sampler_seed,
                            "input": {"image_size": self.input.image_size, "in_channels": self.input.in_channels,
                                      "num_classes": self.input.num_classes}},
               "space": self.space.raw if isinstance(self.space.raw, dict) else {},
               "plugins": plugins.recorded(),  # reloaded first by every reader of the run (analysis)
               "code": code_version()}
        name = "search.yaml" if not self.settings.resume else "search.resume.yaml"
        atomic_write_text(self.out / name, yaml.safe_dump(plain(doc), sort_keys=False))

    def log(self, line: str) -> None:
        if self.settings.record:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            with open(self.out / "search.log", "a") as fh:
                fh.write(f"{stamp} {line}\n")
        if self.log_fn is not None:
            self.log_fn(line)

    # -- asking -----------------------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        return len(self.live) + len(self.proposed) + sum(len(v) for v in self.waiting.values())

    def budget_left(self) -> int:
        """Trials still to hand out: ``--trials`` less those trained or training (a proposal in flight may
        turn out a repeat, which then gives its slot back)."""
        if self.skipped > MAX_SKIPPED_PER_TRIAL * self.settings.trials:
            return self._give_up(f"{self.skipped} infeasible or invalid candidates; the constraints leave too "
                                 "little of the space")
        if self.repeat_streak >= MAX_REPEAT_STREAK:
            return self._give_up(f"the last {self.repeat_streak} proposals all repeated recorded architectures "
                                 f"({len(self.by_digest)} distinct so far): the sampler has converged or the space "
                                 "is exhausted")
        return self.settings.trials - self.counted - len(self.live) - len(self.proposed)

    def _give_up(self, why: str) -> int:
        if not getattr(self, "_gave_up", False):
            self._gave_up = True
            self.log(f"stopping: {why}")
        return 0

    def _tell(self, trial: Any, state: str, values: list[float] | None = None, kind: str = "counted") -> None:
        """Tell Optuna and count the trial as ``counted`` (trained), ``skipped`` (infeasible / invalid) or
        ``repeat`` (a recorded architecture re-used)."""
        TS = optuna_io.TrialState
        if state == "COMPLETE":
            self.study.tell(trial, values)
        else:
            self.study.tell(trial, state=getattr(TS, state))
        if kind == "counted":
            self.counted += 1
        elif kind == "repeat":
            self.repeats += 1
        else:
            self.skipped += 1

    def next_candidate(self) -> Candidate | None:
        """The next architecture to train, or None when the budget is used up (or all of it is in flight)."""
        while (proposal := self.propose()) is not None:
            trial, arch = proposal
            cand = self.admit(trial, arch, self.check(arch))
            if cand is not None:
                return cand
        return None

    def propose(self) -> tuple[Any, ArchConfig] | None:
        """Ask Optuna for a trial and sample a valid architecture for it (invalid samples are recorded and
        skipped); None when the budget is used up. Fast; the trial is in flight until :meth:`admit`."""
        constraints = self.space.constraints
        while self.budget_left() > 0:
            trial = self.study.ask()
            trial.set_user_attr("driver", self.driver)
            trial.set_user_attr("seed", self.settings.seed)
            trial.set_user_attr("code", code_version())
            try:
                arch = self.space.sample(trial, task=self.input)
            except InvalidCandidate as err:
                optuna_io.record_invalid(trial, err, constraints)
                for k, v in {"status": Status.INVALID.value, "fidelity": 0, "fail_reason": f"invalid: {err.error}"}.items():
                    trial.set_user_attr(k, v)
                self._tell(trial, "PRUNED", kind="skipped")
                self.log(f"trial {trial.number}: invalid ({err.error}), not trained")
                continue
            self.proposed[trial.number] = trial
            return trial, arch
        return None

    def check(self, arch: ArchConfig) -> CandidateCheck:
        """The cheap checks of ``arch`` (params, fvcore MACs, latency when needed), cached by digest. This is
        the slow step (about 0.1-1 s): it touches no Optuna state, so it may run outside the searcher's lock."""
        digest = arch.digest()
        got = self.checks.get(digest)
        if got is None:
            got = self.checker(arch) if self.checker else check_candidate(arch, self.space.constraints,
                                                                           latency=self.need_latency)
            self.checks[digest] = got
        return got

    def admit(self, trial: Any, arch: ArchConfig, check: CandidateCheck) -> Candidate | None:
        """Record the checks of a proposed trial; the Candidate to train, or None when the trial was settled
        without training (infeasible, a repeat of a recorded architecture, or waiting for the same one)."""
        constraints = self.space.constraints
        self.proposed.pop(trial.number, None)
        self.checks[check.digest] = check
        optuna_io.record_check(trial, check, constraints)
        trial.set_user_attr("arch", arch.to_dict())
        if not check.feasible:
            why = ", ".join(f"{k} {check.constraints[k]:+.0%}" for k in check.violated)
            for k, v in {"status": Status.INFEASIBLE.value, "fidelity": 0, "fail_reason": f"infeasible: {why}"}.items():
                trial.set_user_attr(k, v)
            self._tell(trial, "PRUNED", kind="skipped")
            self.log(f"trial {trial.number}: infeasible ({why}), not trained")
            return None
        prev = self.by_digest.get(check.digest)
        if prev is None and self.settings.join and check.digest not in self.training:
            self._refresh()
            prev = self.by_digest.get(check.digest)
        if prev is not None:
            self._copy(trial, prev)
            self.repeat_streak += 1
            return None
        if check.digest in self.training:
            self.waiting.setdefault(check.digest, []).append(trial)
            self.repeat_streak += 1
            return None
        self.repeat_streak = 0
        self.live[trial.number] = trial
        self.training[check.digest] = trial.number
        return Candidate(trial.number, check.digest, self.settings.seed, arch.to_dict(), dict(self.train_cfg),
                         self.dataset, self.settings.data_dir, self.threads,
                         costs_of(check),
                         float(self.settings.resources.get("gpu", 0.0)), self.checkpoint_dir, self.shipped_plugins)

    def _copy(self, trial: Any, prev: Any) -> None:
        for key in ("fidelity", "curve", "objectives", "status", "reason", "fail_reason"):
            if key in prev.user_attrs:
                trial.set_user_attr(key, prev.user_attrs[key])
        trial.set_user_attr("duplicate_of", prev.number)
        trial.set_user_attr("wall_time_s", 0.0)
        self._tell(trial, prev.state.name, list(prev.values) if prev.state.name == "COMPLETE" else None,
                   kind="repeat")
        self.log(f"trial {trial.number}: same architecture as trial {prev.number}; its result is reused")

    # -- telling ----------------------------------------------------------------------------------------

    def objective_values(self, digest: str, curve: list[dict[str, Any]]) -> dict[str, float | None]:
        check = self.checks[digest]
        table = search_values(curve[-1] if curve else None, costs_of(check))
        return {o.metric: table[o.metric] for o in self.objectives}

    def finish(self, number: int, outcome: Outcome) -> str:
        """Record a trial's outcome; returns the Optuna state told."""
        trial = self.live.pop(number)
        self.ready.discard(number)
        digest = trial.user_attrs["digest"]
        self.training.pop(digest, None)
        curve = [dict(c) for c in outcome.curve]
        fidelity = sum(1 for c in curve if c.get("partial", 1.0) >= 1.0)
        objectives = self.objective_values(digest, curve)
        attrs = {**outcome.info, "curve": curve, "fidelity": fidelity, "objectives": objectives,
                 "wall_time_s": round(outcome.wall_time_s, 3)}
        bad = [k for k, v in objectives.items() if not is_finite(v)]
        ended = (OutcomeStatus.COMPLETED, OutcomeStatus.STOPPED)
        if outcome.status == OutcomeStatus.COMPLETED and fidelity >= self.max_epochs and not bad:
            state, status, reason = "COMPLETE", Status.COMPLETED, ""
        elif outcome.status in ended and not bad and fidelity < self.max_epochs:
            state, status, reason = "PRUNED", Status.PRUNED, outcome.reason or f"stopped after {fidelity} epochs"
        elif outcome.status == OutcomeStatus.STOPPED and fidelity == 0:
            state, status, reason = "PRUNED", Status.PRUNED, outcome.reason or "stopped before the first epoch"
        else:
            state, status = "FAIL", Status.FAILED
            if outcome.status in ended:
                reason = f"objective {', '.join(bad)} is {objectives[bad[0]]!r}" if bad else outcome.reason
            else:
                reason = f"{outcome.status}: {outcome.reason}" if outcome.reason else str(outcome.status)
        attrs["status"] = status.value
        if reason:
            attrs["fail_reason" if state == "FAIL" else "reason"] = reason
        for k, v in attrs.items():
            trial.set_user_attr(k, plain(v))
        values = [float(objectives[o.metric]) for o in self.objectives] if state == "COMPLETE" else None
        self._tell(trial, state, values)
        self.finished_here += 1
        frozen = optuna_io.frozen(self.study, trial)
        self._remember(frozen)
        for dup in self.waiting.pop(digest, []):
            if status in REUSABLE:
                self._copy(dup, frozen)
            else:  # a failure is not reused: train the duplicate itself later
                dup.set_user_attr("status", Status.FAILED.value)
                dup.set_user_attr("duplicate_of", number)
                dup.set_user_attr("fail_reason", f"waited for trial {number}, which failed")
                self._tell(dup, "FAIL", kind="repeat")
        self.log(f"trial {number}: {state} ({status.value}) fidelity {fidelity}/{self.max_epochs} "
                 + " ".join(f"{k}={short_number(v)}" for k, v in objectives.items()) + (f" - {reason}" if reason else ""))
        if self.settings.record and time.monotonic() - self._written_at >= self.write_every_s:
            self._written_at = time.monotonic()
            self.write_outputs()
            self.log(self.progress())
        return state

    # -- outputs ----------------------------------------------------------------------------------------

    def trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)

    def front(self, trials: list[Any] | None = None) -> list[Any]:
        """The Pareto-optimal COMPLETE trials (full fidelity), one per digest."""
        return front_trials(trials if trials is not None else self.trials(), self.directions)

    def common_fidelity_front(self, trials: list[Any] | None = None) -> tuple[int, list[tuple[Any, list[float]]]]:
        """The front at the highest fidelity every trained trial reached (COMPLETE and PRUNED alike):
        ``(epochs, [(trial, values at that epoch)])``. Only when asked; the default front is COMPLETE-only."""
        trained, seen = [], set()
        for t in trials if trials is not None else self.trials():
            a = t.user_attrs
            if a.get("status") in REUSABLE and a.get("fidelity", 0) >= 1 \
                    and "duplicate_of" not in a and a.get("digest") not in seen:
                seen.add(a.get("digest"))
                trained.append(t)
        if not trained:
            return 0, []
        f = min(t.user_attrs["fidelity"] for t in trained)
        points = []
        for t in trained:
            table = search_values(t.user_attrs["curve"][f - 1], t.user_attrs)
            points.append((t, [table[o.metric] for o in self.objectives]))
        idx = pareto_front([v for _, v in points], self.directions)
        return f, [points[i] for i in idx]

    def counts(self, trials: list[Any] | None = None) -> dict[str, Any]:
        """:func:`trial_counts` of the study (what the progress line, the summary and the dashboard show)."""
        return trial_counts(trials if trials is not None else self.trials(), [o.metric for o in self.objectives],
                            self.directions)

    def progress(self) -> str:
        trials = self.trials()
        c = self.counts(trials)
        done = self.counted  # this driver's architectures trained (the study's, without --join: c["trained"])
        elapsed = time.time() - self.started
        left = max(0, self.settings.trials - done)
        rate = (done - self.counted_at_start) / elapsed if elapsed > 0 else 0.0
        eta = duration(left / rate) if rate > 0 and self.finished_here else "?"
        running = f"{len(self.live) - len(self.ready)} running" + (f", {len(self.ready)} ready" if self.ready else "")
        return (f"trials {done}/{self.settings.trials} done, {running} | {counts_text(c)} | "
                f"elapsed {duration(elapsed)}, left ~{eta}"
                + (f" | study: {len(trials)} trials from {len({t.user_attrs.get('driver') for t in trials})} "
                   "drivers" if self.settings.join else ""))

    def rows(self, trials: list[Any] | None = None) -> list[dict[str, Any]]:
        """``trials.csv``: one row per trial, its :func:`mixnas.runs.trial_fields` (the objectives first, then
        the costs), its constraint values and its parameters; ``""`` where it recorded nothing."""
        rows = []
        for t in trials if trials is not None else self.trials():
            fields = {k: "" if v is None else v for k, v in trial_fields(t).items()}
            row = {k: fields[k] for k in ("number", "state", "status", "digest", "seed", "fidelity")}
            row.update({o.metric: fields[o.metric] for o in self.objectives})
            row.update({k: fields[k] for k in ("params", "macs", "latency_ms", "wall_time_s", "duplicate_of",
                                               "driver", "reason")})
            for name, cval in sorted(t.constraints.items()) if t.constraints else []:
                row[f"constraint:{name}"] = round(cval, 6)
            for k, v in t.params.items():
                row[f"p:{k}"] = v
            rows.append(row)
        return rows

    def write_outputs(self) -> None:
        trials = self.trials()
        rows = self.rows(trials)
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.out / "trials.csv", text.getvalue())  # keeps its last complete version on failure
        front = self.front(trials)
        if [t.number for t in front] != self._written_front or not (self.out / "pareto.yaml").exists():
            self._write_front(front)
        if self.settings.common_fidelity_front:
            f, points = self.common_fidelity_front(trials)
            atomic_write_text(self.out / "pareto_common_fidelity.yaml", yaml.safe_dump(plain(
                {"study": self.study_name, "objectives": [str(o) for o in self.objectives], "fidelity": f,
                 "pareto": [{"trial": t.number, "digest": t.user_attrs["digest"], "state": t.state.name,
                             "objectives": dict(zip([o.metric for o in self.objectives], v)),
                             "arch": t.user_attrs["arch"]} for t, v in points]}), sort_keys=False))

    def _write_front(self, front: list[Any]) -> None:
        """``pareto.yaml`` and ``pareto/``: exactly the current front (files of trials that left it go)."""
        pdir = self.out / "pareto"
        pdir.mkdir(exist_ok=True)
        entries, names = [], set()
        for t in front:
            arch = ArchConfig.from_dict(t.user_attrs["arch"]).with_name(f"{self.study_name}-t{t.number}")
            name = f"trial_{t.number:05d}.yaml"
            names.add(name)
            if not (pdir / name).exists():  # a trial's architecture never changes
                atomic_write_text(pdir / name, plugins.yaml_header() + arch.to_yaml())
            entries.append({"trial": t.number, "digest": t.user_attrs["digest"],
                            "objectives": {o.metric: t.values[i] for i, o in enumerate(self.objectives)},
                            "file": f"pareto/{name}", "arch": arch.to_dict()})
        atomic_write_text(self.out / "pareto.yaml", plugins.yaml_header() + yaml.safe_dump(plain(
            {"study": self.study_name, "objectives": [str(o) for o in self.objectives], "fidelity": self.max_epochs,
             "pareto": entries}), sort_keys=False))
        for stale in pdir.glob("trial_*.yaml"):
            if stale.name not in names:
                stale.unlink()
        self._written_front = [t.number for t in front]

    def close(self) -> None:
        """Write the outputs once more (records told without training since the last finished trial), then
        release the run folder."""
        if self.settings.record:
            self.write_outputs()
            self.log(self.progress())
        self.release()

    def release(self) -> None:
        """Let another driver have the run folder (also done by the OS when this process ends, however)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def summary(self) -> str:
        trials = self.trials()
        front = self.front(trials)
        lines = [f"trials: {counts_text(self.counts(trials), trained=True)}",
                 f"Pareto front: {len(front)} architectures (complete trials, {self.max_epochs} epochs)"]
        lines.append("  trial  " + "  ".join(f"{o.metric:>12}" for o in self.objectives) + "  digest")
        for t in sorted(front, key=lambda t: t.values[0]):
            lines.append(f"  {t.number:5d}  " + "  ".join(f"{short_number(v):>12}" for v in t.values)
                         + f"  {t.user_attrs['digest']}")
        overhead = overhead_line(trials)
        if overhead:
            lines.append(overhead)
        lines.append(f"written: {self.out / 'trials.csv'}, {self.out / 'pareto.yaml'}")
        return "\n".join(lines)


def counts_text(c: dict[str, Any], trained: bool = False) -> str:
    """:func:`trial_counts` as the console writes it: ``complete 26 pruned 45 failed 0 infeasible 0 invalid 0
    re-used 12 | best top1 80.02 | Pareto 11`` (``requeued N`` when there are any; ``trained``: led by ``N
    trained``)."""
    best = f"{c['best_top1']:.2f}" if c["best_top1"] is not None else "-"
    return ((f"{c['trained']} trained | " if trained else "")
            + f"complete {c['complete']} pruned {c['pruned']} failed {c['failed']} infeasible {c['infeasible']} "
            f"invalid {c['invalid']} re-used {c['reused']}" + (f" requeued {c['requeued']}" if c["requeued"] else "")
            + f" | best top1 {best} | Pareto {c['pareto']}")


def slot_gaps(trials: list[Any]) -> list[float]:
    """Seconds each worker slot sat between two trials it trained (the framework's overhead per trial: Tune's
    scheduling, Optuna's ask and tell, the checks of the next candidate when they were not ready in time).

    A slot is one worker process (``node_id``, ``pid``: Ray reuses actors); gaps are between one trial's last
    report (``worker_time``) and the next trial's start (``worker_start``) in the same process. Start-up
    before the first trial and the idle tail after the last are not per-trial costs and are not counted."""
    slots: dict[tuple, list[tuple[float, float]]] = {}
    for t in trials:
        a = t.user_attrs
        if "duplicate_of" in a or not all(k in a for k in ("pid", "worker_start", "worker_time")):
            continue
        slots.setdefault((a.get("node_id"), a["pid"]), []).append((a["worker_start"], a["worker_time"]))
    gaps = []
    for spans in slots.values():
        spans.sort()
        gaps += [max(0.0, start - end) for (_, end), (start, _) in zip(spans, spans[1:])]
    return gaps


def overhead_line(trials: list[Any]) -> str | None:
    """One line on the framework overhead per trial (see :func:`slot_gaps`), or None before two trials ran
    in the same worker."""
    gaps = slot_gaps(trials)
    walls = [t.user_attrs["wall_time_s"] for t in trials
             if "duplicate_of" not in t.user_attrs and is_finite(t.user_attrs.get("wall_time_s"))
             and t.user_attrs.get("wall_time_s", 0) > 0]
    if not gaps or not walls:
        return None
    mean_gap, mean_trial = sum(gaps) / len(gaps), sum(walls) / len(walls)
    return (f"framework overhead: {mean_gap:.2f} s between trials on a worker (mean of {len(gaps)} gaps), "
            f"{mean_gap / mean_trial:.1%} of the mean trial time ({mean_trial:.1f} s)")
