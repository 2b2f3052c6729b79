"""The one module that imports Ray: the Tune runner of ``mixnas search``.

* :class:`OptunaAskTellSearcher`: a Ray Tune ``Searcher`` around :class:`mixnas.search_driver.Search` (Optuna
  ask/tell through our own bookkeeping; Ray's ``OptunaSearch`` is not used: it never forwards intermediate
  results, tells COMPLETE with truncated values when a scheduler stops a trial and leaves NaN trials RUNNING).
* :class:`MOASHAScheduler`: multi-objective ASHA as a Tune scheduler, a thin wrapper of :mod:`mixnas.moasha`.
* :func:`trainable`: a function trainable that proxy-trains one candidate and reports every epoch.
* :func:`run_search`: the Tuner (``reuse_actors=True``, per-trial resources, bounded retries on worker death).
* :func:`run_trials`: the same trainable and Tuner settings for a fixed list of trials (``mixnas study run``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from mixnas.moasha import CONTINUE, MOASHA
from mixnas.search_driver import Search
from mixnas.trial import Candidate, Outcome
from mixnas.vocab import OutcomeStatus

RUNNING = "running"  # a row reported while the trial trains on (STATUS_KEY's value besides an OutcomeStatus)

STATUS_KEY = "mixnas_status"
CURVE_KEYS = ("epoch", "steps", "train_loss", "train_top1", "val_loss", "val_top1", "lr", "train_time_s",
              "eval_time_s", "epoch_time_s", "images_per_s", "partial")  # EpochMetrics, as kept per epoch
FINAL_KEYS = ("test_top1", "measured")  # Outcome.info a trial reports once, with its last row
# Where a trial ran, in every row it reports (kept as the trial's record): node, worker process, its start and
# latest wall-clock times, the device it trained on and the GPU ids Ray gave it ("" without a GPU share), and the
# sha256s of the plugins the worker loaded for it (mixnas.trial.trial_plugins; absent without plugins).
PLACEMENT_KEYS = ("node_id", "pid", "worker_start", "worker_time", "device", "gpu_ids", "plugin_sha256")


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start (or connect to) Ray unless it is already up; returns whether this call started it."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our own progress lines, not Tune's tables
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:  # "local": a new Ray of its own, never one found through RAY_ADDRESS or a `ray start` on this machine
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return True


def trainable(config: dict[str, Any]) -> None:
    """Train one candidate; one ``tune.report`` per epoch (plus one final row when it ends abnormally).

    Every row carries ``worker_start`` / ``worker_time`` (wall-clock seconds since the epoch, on the worker),
    from which the search measures the framework's overhead: the time a slot spends between trials."""
    from mixnas.trial import run_candidate, trial_plugins

    t0, started = time.perf_counter(), time.time()
    max_epochs = config["train"]["epochs"]
    costs = config.get("costs", {})
    where = {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "worker_start": started,
             **device_info(config)}

    def report(row: dict[str, Any]) -> bool:
        done = row.get("epoch", 0) >= max_epochs and row.get("partial", 1.0) >= 1.0
        tune.report({**row, **costs, **where, "top1": row.get("val_top1"),
                     STATUS_KEY: OutcomeStatus.COMPLETED.value if done else RUNNING,
                     "trial_wall_s": time.perf_counter() - t0, "worker_time": time.time()})
        return True

    try:
        if config.get("plugins"):  # before the first row: every row names the code the worker trains with
            where["plugin_sha256"] = trial_plugins(config)
        outcome = run_candidate(config, report)
    except Exception as err:  # noqa: BLE001 - a trial that raises is recorded as FAIL with its reason
        outcome = Outcome(OutcomeStatus.ERROR, [], f"{type(err).__name__}: {err}")
    extra = {k: outcome.info[k] for k in FINAL_KEYS if k in outcome.info}  # test top-1, pre-training measures
    if outcome.status == OutcomeStatus.COMPLETED and extra and outcome.curve:
        report({**outcome.curve[-1], **extra})
    if outcome.status != OutcomeStatus.COMPLETED:
        tune.report({**where, **extra, STATUS_KEY: str(outcome.status), "reason": outcome.reason,
                     "trial_wall_s": time.perf_counter() - t0, "worker_time": time.time(),
                     "epoch": len(outcome.curve) + 1})


def device_info(config: dict[str, Any]) -> dict[str, str]:
    """The device a trial trains on (:func:`mixnas.trial.trial_device`) and the GPU ids Ray assigned to its
    worker, comma-separated (a fractional share names the GPU it shares)."""
    from mixnas.trial import trial_device

    return {"device": trial_device(config), "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids())}


class MOASHAScheduler(FIFOScheduler):
    """Multi-objective asynchronous successive halving (promotion by non-dominated rank, crowding ties)."""

    def __init__(self, metrics: list[str], directions: list[str], max_t: int, grace: int = 1, eta: float = 3.0,
                 time_attr: str = "epoch"):
        super().__init__()
        self.metrics, self.time_attr, self.max_t = list(metrics), time_attr, max_t
        self.core = MOASHA(tuple(directions), max_t=max_t, grace=grace, eta=eta)
        self.stopped: set[str] = set()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if result.get(STATUS_KEY) != RUNNING or self.time_attr not in result:
            return TrialScheduler.CONTINUE
        t = int(result[self.time_attr])
        if t >= self.max_t:
            return TrialScheduler.CONTINUE
        decision = self.core.on_result(trial.trial_id, t, [result.get(m) for m in self.metrics])
        if decision == CONTINUE:
            return TrialScheduler.CONTINUE
        self.stopped.add(trial.trial_id)
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        return "MO-ASHA: " + ", ".join(f"rung {k}: {len(v)}" for k, v in self.core.rungs.items())


class OptunaAskTellSearcher(Searcher):
    """Ray Tune asks this for configs; each comes from :class:`mixnas.search_driver.Search`.

    A background thread prepares the next candidate while trials train (Optuna's ask, sampling, and the
    fvcore / latency checks, which take up to a second per candidate and used to stall Tune's event loop
    with a slot idle). Search state is only touched under ``lock``; the checks themselves run outside it.
    """

    def __init__(self, search: Search, concurrency: int):
        super().__init__(metric="top1", mode="max")
        self.search, self.concurrency = search, concurrency
        self.running: dict[str, Candidate] = {}
        self.curves: dict[str, list[dict[str, Any]]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.ready: list[Candidate] = []
        self.error: BaseException | None = None
        self.wake = threading.Event()
        self.closed = False
        self.preparing = False
        self.thread = threading.Thread(target=self._prefetch, name="mixnas-prefetch", daemon=True)
        self.thread.start()

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its searcher with the experiment state; threads and locks stay behind (the study, not
        Tune's experiment state, is what ``--resume`` restores from)."""
        return {k: v for k, v in self.__dict__.items()
                if k not in ("lock", "wake", "thread", "error", "search", "ready", "running")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, lock=threading.RLock(), wake=threading.Event(), thread=None, error=None,
                             closed=True, search=None, ready=[], running={})

    def _prepare_one(self) -> bool:
        """Prepare one candidate into ``ready``; False when there is nothing to prepare now."""
        with self.lock:
            if self.ready or self.closed:
                return False
            proposal = self.search.propose()
            if proposal is None:
                return False
            self.preparing = True
        try:
            trial, arch = proposal
            check = self.search.check(arch)
            with self.lock:
                cand = self.search.admit(trial, arch, check)
                if cand is not None:
                    self.ready.append(cand)
                    self.search.ready.add(cand.number)
        finally:
            self.preparing = False
        return True

    def _prefetch(self) -> None:
        while not self.closed:
            try:
                if not self._prepare_one():
                    self.wake.wait(0.5)
                    self.wake.clear()
            except BaseException as err:  # noqa: BLE001 - handed to Tune's thread by suggest()
                self.error = err
                return

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.error is not None:
            raise self.error
        with self.lock:
            if len(self.running) >= self.concurrency:
                return None
            if not self.ready and not self.preparing and self.search.budget_left() > 0:
                self.wake.set()
            if not self.ready:
                finished = (not self.running and not self.preparing and self.search.inflight == 0
                            and self.search.budget_left() <= 0)
                return Searcher.FINISHED if finished else None
            cand = self.ready.pop(0)
            self.search.ready.discard(cand.number)
            self.running[trial_id] = cand
            self.curves[trial_id] = []
        self.wake.set()  # prepare the next one while this trains
        return cand.config()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.last[trial_id] = result
        add_curve_row(self.curves.setdefault(trial_id, []), result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        with self.lock:
            self._complete(trial_id, result, error)
        self.wake.set()

    def _complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        cand = self.running.pop(trial_id, None)
        if cand is None:
            return
        if result and result is not self.last.get(trial_id):
            self.on_trial_result(trial_id, result)  # a result the scheduler stopped on never reached us
        curve = self.curves.pop(trial_id, [])
        last = result or self.last.get(trial_id) or {}
        self.last.pop(trial_id, None)
        s = self.search.settings
        self.search.finish(cand.number, outcome_of(curve, last, error, s.max_retries, f"the {s.scheduler} scheduler"))


def add_curve_row(curve: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """Keep one epoch's row of a trial's curve (a retried trial starts its curve again)."""
    if result.get(STATUS_KEY) not in (RUNNING, OutcomeStatus.COMPLETED):
        return
    epoch = int(result.get("epoch", 0))
    del curve[max(0, epoch - 1):]
    curve.append({k: result[k] for k in CURVE_KEYS if k in result})


def outcome_of(curve: list[dict[str, Any]], last: dict[str, Any], error: bool, retries: int,
               stopper: str) -> Outcome:
    """The :class:`Outcome` of an ended Tune trial from its curve and its last reported row."""
    wall = float(last.get("trial_wall_s", 0.0) or 0.0)
    status = last.get(STATUS_KEY)
    if error:
        outcome = Outcome(OutcomeStatus.ERROR, curve, f"the trial's worker failed (after {retries} retries)", wall)
    elif status == OutcomeStatus.COMPLETED:
        outcome = Outcome(OutcomeStatus.COMPLETED, curve, "", wall)
    elif status == RUNNING:
        outcome = Outcome(OutcomeStatus.STOPPED, curve, f"stopped by {stopper} after {len(curve)} epochs", wall)
    else:
        outcome = Outcome(str(status or OutcomeStatus.ERROR), curve, str(last.get("reason", "no result reported")), wall)
    outcome.info = {k: last[k] for k in (*PLACEMENT_KEYS, *FINAL_KEYS) if k in last}
    return outcome


class ProgressCallback(tune.Callback):
    """A progress line every ``every`` seconds while trials run (finished trials print their own)."""

    def __init__(self, searcher: OptunaAskTellSearcher, every: float = 30.0):
        self.searcher, self.every, self.next = searcher, every, time.time() + every

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.time() >= self.next:
            self.next = time.time() + self.every
            with self.searcher.lock:
                if self.searcher.search is not None:
                    self.searcher.search.log(self.searcher.search.progress())


def make_scheduler(search: Search) -> TrialScheduler:
    s = search.settings
    if s.scheduler == "none":
        return FIFOScheduler()
    if s.scheduler == "asha":
        o = search.objectives[0]
        return AsyncHyperBandScheduler(time_attr="epoch", metric=o.metric, mode=o.direction,
                                       max_t=search.max_epochs, grace_period=s.grace, reduction_factor=s.eta)
    return MOASHAScheduler([o.metric for o in search.objectives], search.directions, search.max_epochs,
                           grace=s.grace, eta=s.eta)


def run_search(search: Search) -> None:
    """Run the search's remaining trials through Ray Tune."""
    import logging

    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    s = search.settings
    started = init_ray(s.address, num_cpus=None)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    searcher = OptunaAskTellSearcher(search, s.concurrency)
    try:
        resources = {"cpu": s.resources.get("cpu", 1.0), "gpu": s.resources.get("gpu", 0.0)}
        tuner = Tuner(
            tune.with_resources(trainable, resources),
            tune_config=TuneConfig(search_alg=searcher, scheduler=make_scheduler(search), num_samples=-1,
                                   max_concurrent_trials=s.concurrency, reuse_actors=True),
            run_config=RunConfig(name=f"tune-{int(time.time())}",
                                 storage_path=str((Path(s.out) / "ray_results").resolve()),
                                 failure_config=FailureConfig(max_failures=s.max_retries), verbose=0,
                                 callbacks=[ProgressCallback(searcher)],
                                 log_to_file=True))
        tuner.fit()
    finally:
        searcher.close()
        with searcher.lock:
            search.close()
        if started:
            ray.shutdown()


# -- fixed trials (mixnas study run) --------------------------------------------------------------------------


def _keyed_trainable(config: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
    """:func:`trainable` for the trial named ``config["key"]`` (the configs travel once, in Ray's object store)."""
    trainable(configs[config["key"]])


class TrialCollector(tune.Callback):
    """Builds each trial's :class:`Outcome` from its reported rows and hands it to ``on_done`` as it ends (so
    the caller writes it at once), and logs a progress line every ``every`` seconds."""

    def __init__(self, on_done: Callable[[str, Outcome], None], total: int, retries: int,
                 log: Callable[[str], None], every: float = 60.0):
        self.on_done, self.total, self.retries, self.log, self.every = on_done, total, retries, log, every
        self.curves: dict[str, list[dict[str, Any]]] = {}
        self.done, self.t0, self.next = 0, time.time(), time.time() + every

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        add_curve_row(self.curves.setdefault(trial.trial_id, []), result)

    def _end(self, trial: Any, error: bool) -> None:
        outcome = outcome_of(self.curves.pop(trial.trial_id, []), trial.last_result or {}, error, self.retries,
                             "Ray Tune")
        self.done += 1
        self.on_done(trial.config["key"], outcome)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, error=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.time() < self.next:
            return
        self.next = time.time() + self.every
        running = sum(1 for t in trials if t.status == "RUNNING")
        epochs = sum(len(self.curves.get(t.trial_id, [])) for t in trials if t.status == "RUNNING")
        self.log(f"  ... {self.done}/{self.total} trials ended, {running} running ({epochs} epoch(s) done "
                 f"between them), {(time.time() - self.t0) / 60:.1f} min")


def run_trials(configs: dict[str, dict[str, Any]], on_done: Callable[[str, Outcome], None], *, out: str | Path,
               resources: dict[str, float], address: str | None = None, max_retries: int = 2,
               log: Callable[[str], None] = print, every: float = 60.0) -> None:
    """Run a fixed set of trial configs (keyed by name) through Ray Tune: the trainable of the search, one
    trial per config, as many at once as the cluster's resources allow, a worker that dies retried up to
    ``max_retries`` times; ``on_done(key, outcome)`` is called on the driver as each trial ends."""
    import logging

    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    started = init_ray(address)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    try:
        fn = tune.with_parameters(_keyed_trainable, configs=configs)
        tuner = Tuner(
            tune.with_resources(fn, {"cpu": resources.get("cpu", 1.0), "gpu": resources.get("gpu", 0.0)}),
            param_space={"key": tune.grid_search(list(configs))},
            tune_config=TuneConfig(num_samples=1, reuse_actors=True),
            run_config=RunConfig(name=f"study-{int(time.time())}", storage_path=str((Path(out) / "ray_results").resolve()),
                                 failure_config=FailureConfig(max_failures=max_retries), verbose=0,
                                 callbacks=[TrialCollector(on_done, len(configs), max_retries, log, every)],
                                 log_to_file=True))
        tuner.fit()
    finally:
        if started:
            ray.shutdown()


def cluster_nodes() -> list[str]:
    """Addresses of the alive nodes of the connected cluster."""
    return [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]


__all__ = ["PLACEMENT_KEYS", "MOASHAScheduler", "OptunaAskTellSearcher", "TrialCollector", "cluster_nodes",
           "device_info", "init_ray", "outcome_of", "run_search", "run_trials", "trainable"]
