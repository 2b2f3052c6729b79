"""The simulated backend: a search replayed on a benchmark table instead of trained.

``mixnas search --space SPACE --table TABLE`` runs the same :class:`mixnas.search_driver.Search` (Optuna sampler,
checks, de-duplication, MO-ASHA, trials.csv, pareto.yaml, the dashboard) with only the trial body
replaced: a trial's per-epoch results are the table's record of its architecture (seed 0, the table
setting), and time advances on a simulated clock with ``concurrency`` workers. Each epoch costs its
recorded time (training plus the validation pass that scores it), so asynchronous scheduling behaves as it
would live: a worker frees up when its trial ends or is stopped, and is handed the next candidate at that
simulated instant. The cheap checks use the table's params, MACs and latency (measured at batch 1 and one
thread when the table was built) instead of counting again. Early stopping is the in-process rule of
:class:`mixnas.trial.Stopper` (as ``LocalRunner``'s): ``moasha`` is exactly the live scheduler's rule, while
``asha`` is the same successive-halving rule on the first objective, not Ray's ``AsyncHyperBandScheduler``.

An architecture whose recorded run diverged replays as a failed trial at the epoch where it diverged. A
search is refused before its first trial when its space holds an architecture the table lacks (or only a
failed record of it), when its
training recipe differs from the table's (data fraction, learning rate, ...), or when it asks for more
epochs than the table recorded.

Every trial records ``sim_start`` / ``sim_end`` (simulated seconds since the search began) and ``worker``;
``wall_time_s`` is its simulated duration. :func:`compute_curve` turns a finished study into hypervolume
against simulated compute (worker-seconds), the measure of search efficiency in ``bench/``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from mixnas.checks import CandidateCheck, constraint_values
from mixnas.config import ArchConfig
from mixnas.errors import MixnasError
from mixnas.tabular import FINAL, Table
from mixnas.trial import Candidate, Outcome, Stopper
from mixnas.vocab import OutcomeStatus

# TrainConfig fields that may differ between a search and the table it replays: the search decides them.
FREE_TRAIN_FIELDS = ("epochs", "seed", "max_minutes")


def epoch_seconds(row: dict[str, Any]) -> float:
    """Simulated cost of one recorded epoch: its training plus the validation pass that scores it."""
    return float(row.get("train_time_s") or 0.0) + float(row.get("eval_time_s") or 0.0)


class TableChecks:
    """The cheap checks of a candidate from the table's record (params, MACs, latency), no counting."""

    def __init__(self, table: Table, constraints: Any, need_latency: bool):
        self.records = table.arch_records()
        self.table, self.constraints, self.need_latency = table, constraints, need_latency

    def __call__(self, arch: ArchConfig) -> CandidateCheck:
        rec = self.record(arch.digest())
        latency = (rec.get("measured") or {}).get("latency_ms")
        if latency is None and (self.need_latency or self.constraints.max_latency_ms is not None):
            raise MixnasError(f"{self.table.file}: architecture {arch.digest()} has no latency recorded")
        values = constraint_values(rec["params"], rec["macs"], latency, self.constraints)
        return CandidateCheck(arch.digest(), int(rec["params"]), int(rec["macs"]), latency, values)

    def record(self, digest: str) -> dict[str, Any]:
        rec = self.records.get(digest)
        if rec is None:
            raise MixnasError(f"{self.table.file}: architecture {digest} is not in the table; a simulated "
                              "search replays only the architectures the table holds")
        return rec


def validate(search: Any, table: Table) -> None:
    """Refuse, before the first trial, a search the table cannot answer (see the module docstring)."""
    from mixnas.tabular import space_archs

    where = f"--table {table.dir}"
    if search.dataset != table.space().task.dataset:
        raise MixnasError(f"{where}: the table was trained on {table.space().task.dataset!r}, the search asks "
                          f"for {search.dataset!r}")
    records = table.arch_records()
    incomplete = [d for d, r in records.items() if r.get("status") not in FINAL]
    try:
        archs = space_archs(search.space)
    except MixnasError as err:
        raise MixnasError(f"{where}: {err}") from None
    digests = [a.with_task(**_task_of(search)).digest() if _task_of(search) else a.digest() for a in archs]
    missing = [d for d in digests if d not in records]
    if missing:
        raise MixnasError(f"{where}: {len(missing)} of the {len(digests)} architectures of {search.space.path} are "
                          f"not in the table (for instance {missing[0]}); search the table's own space "
                          f"({table.dir / 'space.yaml'}) or a sub-space of it")
    unusable = sorted(set(digests) & set(incomplete))
    if unusable:
        raise MixnasError(f"{where}: {len(unusable)} architectures of the space have no completed record in the "
                          f"table (for instance {unusable[0]}: {records[unusable[0]].get('status')}); finish the "
                          "build first (`mixnas bench build ... --out TABLE` resumes it)")
    if search.max_epochs > table.epochs:
        raise MixnasError(f"{where}: the table records {table.epochs} epochs per architecture; --max-epochs "
                          f"{search.max_epochs} asks for more")
    recorded = next(iter(records.values()))["train"]
    for key, want in search.train_cfg.items():
        if key in FREE_TRAIN_FIELDS:
            continue
        have = recorded.get(key)
        if have != want:
            flag = {"fraction": "--fraction", "val_fraction": "--val-fraction", "bf16": "--bf16"}.get(key, key)
            raise MixnasError(f"{where}: the table was trained with {key} = {have!r}, the search asks for "
                              f"{want!r} ({flag}); a simulated search replays the table's recipe")


def _task_of(search: Any) -> dict[str, Any]:
    inp, task = search.input, search.space.task
    changed = {}
    if inp.image_size != task.image_size:
        changed["image_size"] = inp.image_size
    if inp.in_channels != task.in_channels:
        changed["in_channels"] = inp.in_channels
    if inp.num_classes != task.num_classes:
        changed["num_classes"] = inp.num_classes
    return changed


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    worker: int = field(compare=False)
    cand: Candidate = field(compare=False)
    epoch: int = field(compare=False)


class SimulatedRunner:
    """Replays a search on a table with ``search.settings.concurrency`` simulated workers.

    ``max_sim_s``: stop handing out candidates once the simulated clock passes this many seconds (the
    trials in flight finish); None: run until ``--trials`` are done."""

    def __init__(self, search: Any, table: Table, max_sim_s: float | None = None):
        s = search.settings
        self.search, self.table = search, table
        self.max_sim_s = max_sim_s if max_sim_s is not None else s.max_sim_s
        self.workers = max(1, int(s.concurrency))
        self.checks = TableChecks(table, search.space.constraints, search.need_latency)
        search.checker = self.checks
        search.write_every_s = 1.0  # hundreds of trials a second: the files follow once a second (and at the end)
        self.stopper = Stopper(s.scheduler, search.directions, search.max_epochs, s.grace, s.eta)
        self.clock = 0.0

    def run(self) -> None:
        search = self.search
        free = list(range(self.workers))
        events: list[_Event] = []
        started: dict[int, float] = {}
        seq = 0
        while True:
            while free and (self.max_sim_s is None or self.clock < self.max_sim_s):
                cand = search.next_candidate()
                if cand is None:
                    break
                worker = free.pop(0)
                started[cand.number] = self.clock
                seq += 1
                heapq.heappush(events, _Event(self.clock + self._cost(cand, 1), seq, worker, cand, 1))
            if not events:
                break
            ev = heapq.heappop(events)
            self.clock = ev.time
            rec = self.checks.record(ev.cand.digest)
            if ev.epoch > len(rec["curve"]):  # a diverged record: it ends where the run diverged
                self._end(ev, started.pop(ev.cand.number), rec["status"], rec["curve"], rec.get("reason", ""))
                free = sorted(free + [ev.worker])
                continue
            row = dict(rec["curve"][ev.epoch - 1])
            vals = search.objective_values(ev.cand.digest, [row])
            go_on = ev.epoch < search.max_epochs and self.stopper.keep_going(
                str(ev.cand.number), ev.epoch, [vals[o.metric] for o in search.objectives])
            if go_on:
                seq += 1
                heapq.heappush(events, _Event(self.clock + self._cost(ev.cand, ev.epoch + 1), seq, ev.worker,
                                              ev.cand, ev.epoch + 1))
                continue
            done = ev.epoch >= search.max_epochs
            self._end(ev, started.pop(ev.cand.number), OutcomeStatus.COMPLETED if done else OutcomeStatus.STOPPED, rec["curve"][:ev.epoch],
                      "" if done else f"stopped by the {search.settings.scheduler} scheduler after {ev.epoch} epochs")
            free = sorted(free + [ev.worker])
        search.close()

    def _end(self, ev: _Event, start: float, status: str, curve: list[dict[str, Any]], reason: str) -> None:
        """Tell the search how a trial ended, with where and when it ran on the simulated clock."""
        self.search.finish(ev.cand.number, Outcome(
            status, [dict(r, partial=1.0) for r in curve], reason, self.clock - start,
            {"sim_start": round(start, 3), "sim_end": round(self.clock, 3), "worker": ev.worker}))

    def _cost(self, cand: Candidate, epoch: int) -> float:
        rec = self.checks.record(cand.digest)
        curve = rec["curve"]
        if epoch == len(curve) + 1 and rec.get("status") == OutcomeStatus.DIVERGED:
            return 0.0  # the epoch it diverged in is not recorded: its time is not charged
        if epoch > len(curve):
            raise MixnasError(f"{self.table.file}: architecture {cand.digest} has {len(curve)} epochs recorded, "
                              f"the search asks for epoch {epoch}")
        return epoch_seconds(curve[epoch - 1])


def table_run(table: Table, out: str, *, objectives: str = "top1:max,macs:min,latency_ms:min", workers: int = 2,
              log: Any = None) -> Any:
    """Every architecture of the table as one run folder (a simulated exhaustive sweep: each architecture
    enqueued once, trained to the table's highest fidelity, no early stopping), for ``mixnas dashboard``."""
    from mixnas.search_driver import Search, SearchSettings
    from mixnas.tabular import SPACE_FILE, space_archs

    recipe = table.build_train()
    space_path = str(table.dir / SPACE_FILE)
    space = table.space()
    archs = [a for a in space_archs(space) if a.digest() in table.arch_records()]
    settings = SearchSettings(space=space_path, out=out, trials=len(archs), objectives=objectives, sampler="random",
                              scheduler="none", max_epochs=table.epochs, concurrency=workers,
                              storage=f"journal:{out}/study.journal", table=str(table.dir),
                              train={"fraction": recipe["fraction"], "val_fraction": recipe["val_fraction"]})
    search = Search(settings, space=space, log=log)
    validate(search, table)
    for arch in archs:
        search.study.enqueue_trial(space.params_of(arch))
    SimulatedRunner(search, table).run()
    return search


__all__ = ["SimulatedRunner", "TableChecks", "epoch_seconds", "table_run", "validate"]
