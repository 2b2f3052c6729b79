"""The trial body: one architecture trained (or looked up) and reported epoch by epoch.

This is the seam between deciding *what* to train (:mod:`mixnas.search_driver`, :mod:`mixnas.study_run`, the
benchmark build in :mod:`mixnas.tabular`) and *how* a trial is executed: live by :func:`run_candidate` (in
this process, or on a Ray worker through :mod:`mixnas.ray_io`), or replayed from a benchmark table by
:mod:`mixnas.simulate`. Everything here is plain data that travels to Ray workers.

* :class:`Candidate`: what a runner needs to train one architecture.
* :class:`Outcome`: what a runner reports back (status, per-epoch curve, wall time, where it ran).
* :func:`run_candidate`: train one candidate; ``report(row)`` after every epoch may stop it. With
  ``measure`` in the config it first measures the untrained network (latency at one thread and batch 1,
  zero-cost proxies), which the benchmark build records beside the curve.
* :class:`Stopper`: the in-process early-stopping decision (MO-ASHA, or single-objective ASHA on the first
  objective) shared by the local and the simulated runners; the Ray runner wraps the same rule.
* :class:`LocalRunner`: a search's trials one after another in this process (tests, and the schedulers'
  logic without Ray); it drives any :class:`Driver` (:class:`mixnas.search_driver.Search` is one).
* :func:`load_data` / :func:`forget_data`: the per-process dataset cache (a reused Ray actor loads once).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mixnas.config import ArchConfig
from mixnas.vocab import OutcomeStatus

MEASURES = ("latency", "proxies")  # what ``config["measure"]`` may ask for before training


@dataclass(frozen=True)
class Candidate:
    """One architecture to train: what the runner needs, all plain data (it travels to Ray workers)."""

    number: int
    digest: str
    seed: int
    arch: dict[str, Any]
    train: dict[str, Any]  # TrainConfig dict (epochs = max_epochs)
    dataset: str
    data_dir: str | None
    threads: int
    costs: dict[str, Any] = field(default_factory=dict)  # macs, params, latency_ms: fixed per architecture
    gpu: float = 0.0  # GPU share per trial: train on CUDA when > 0 and one is visible
    checkpoint_dir: str | None = None  # keep the weights of COMPLETE trials here (trial_NNNNN.pt)
    plugins: list[dict[str, Any]] = field(default_factory=list)  # mixnas.plugins.shipped(): loaded before building

    def config(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """What a runner reports back about one trial."""

    status: str  # an OutcomeStatus: completed | stopped | diverged | timeout | error
    curve: list[dict[str, Any]]
    reason: str = ""
    wall_time_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # where it ran (node, pid), recorded as user attributes


# -- the dataset cache --------------------------------------------------------------------------------------

_DATA: dict[tuple, Any] = {}


def load_data(dataset: str, data_dir: str | None, arch: ArchConfig, cfg: Any, test: bool = False) -> Any:
    """The dataset for ``arch`` (with its test split when ``test``), cached per process (a reused Ray actor
    loads it once)."""
    from mixnas.data import load_dataset

    key = (dataset, data_dir, arch.input.image_size, arch.input.in_channels, cfg.val_fraction, cfg.split_seed, test)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_dataset(dataset, data_dir, arch.input.image_size, arch.input.in_channels,
                                  cfg.val_fraction, cfg.split_seed, test=test)
    return _DATA[key]


def forget_data() -> None:
    """Drop the per-process dataset cache (a driver that only checked the data frees it for the workers)."""
    _DATA.clear()


# -- live training ------------------------------------------------------------------------------------------


def measure_untrained(arch: ArchConfig, data: Any, what: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """Measurements of the untrained network that cost seconds, not epochs: ``latency`` (forward pass at
    batch 1 on the CPU with this process's thread count; median and interquartile range in ms) and
    ``proxies`` (the zero-cost proxies of :mod:`mixnas.proxies` on one seeded training batch)."""
    import torch

    out: dict[str, Any] = {}
    if "latency" in what:
        from mixnas.latency import measure_latency

        lat = measure_latency(arch, batch_size=1, device="cpu", threads=torch.get_num_threads(), warmup=10,
                              repeats=50)
        out["latency_ms"] = round(lat.median_ms, 5)
        out["latency_iqr_ms"] = round(lat.iqr_ms, 5)
        out["latency_threads"] = lat.threads
    if "proxies" in what:
        from mixnas.proxies import PROXIES, proxy_batch, score_arch

        images, labels = proxy_batch(data, seed=seed)
        scores = score_arch(arch, images, labels, [p for p in PROXIES if p not in ("params", "macs")], seed=seed)
        out["proxies"] = {k: (float(v) if math.isfinite(v) else None) for k, v in scores.scores.items()}
    return out


def trial_device(config: dict[str, Any]) -> str:
    """Where a trial trains: ``cuda`` when it was given a GPU share (``gpu`` > 0) and torch sees a CUDA device
    (under Ray, the one the trial was placed on: Ray sets ``CUDA_VISIBLE_DEVICES``), else ``cpu``."""
    import torch

    return "cuda" if float(config.get("gpu") or 0.0) > 0 and torch.cuda.is_available() else "cpu"


def _killed_after(report: Callable[[dict[str, Any]], bool], epoch: int, marker: str) -> Callable:
    """Fault injection for the tests: the worker process is killed with SIGKILL right after it reported
    ``epoch`` (once: ``marker`` records that it happened), as the OOM killer or a lost node would."""
    import signal

    def wrapped(row: dict[str, Any]) -> bool:
        go_on = report(row)
        if int(row.get("epoch", 0)) >= epoch and not os.path.exists(marker):
            Path(marker).write_text(f"killed after epoch {row.get('epoch')}\n")
            time.sleep(0.5)  # let the report reach the driver first: the kill lands mid-trial
            os.kill(os.getpid(), signal.SIGKILL)
        return go_on
    return wrapped


def trial_plugins(config: dict[str, Any]) -> str:
    """Load the plugins a trial config ships (``config["plugins"]``, :func:`mixnas.plugins.shipped`) in this
    process, before anything names their mixers: the same code as the driver's (by sha256), from the node's
    copy of the file or from the shipped text. Returns their sha256s, comma-separated, which the trial records
    as ``plugin_sha256`` (the code that trained it, as seen on the worker)."""
    from mixnas.plugins import ensure_plugins

    return ",".join(p.sha256 or p.module for p in ensure_plugins(config.get("plugins")))


def run_candidate(config: dict[str, Any], report: Callable[[dict[str, Any]], bool]) -> Outcome:
    """Train one candidate; ``report(row)`` after every epoch returns False to stop (the scheduler's say)."""
    import torch

    from mixnas.train import TrainConfig, train

    t0 = time.perf_counter()
    torch.set_num_threads(int(config.get("threads", 1)))
    plugin_sha256 = trial_plugins(config)
    arch = ArchConfig.from_dict(config["arch"])
    cfg = TrainConfig.from_dict(config["train"])
    final_eval = bool(config.get("final_eval"))  # studies that compare with a paper's test-split numbers
    data = load_data(config["dataset"], config.get("data_dir"), arch, cfg, test=final_eval)
    die = os.environ.get("MIXNAS_TEST_DIE_ONCE", "")  # fault injection for the tests: "DIGEST:MARKER_FILE"
    if die.startswith(config["digest"] + ":") and not os.path.exists(die.split(":", 1)[1]):
        Path(die.split(":", 1)[1]).write_text("died once\n")
        os._exit(1)  # the worker process dies
    kill = os.environ.get("MIXNAS_TEST_KILL_AT_EPOCH", "")  # "DIGEST:EPOCH:MARKER_FILE": SIGKILL mid-trial
    if kill.startswith(config["digest"] + ":"):
        report = _killed_after(report, int(kill.split(":")[1]), kill.split(":", 2)[2])
    if os.environ.get("MIXNAS_TEST_NAN_DIGEST") == config["digest"]:
        row = {"epoch": 1, "val_top1": math.nan, "partial": 1.0}
        report(row)
        return Outcome(OutcomeStatus.COMPLETED, [row], wall_time_s=time.perf_counter() - t0)
    measured = measure_untrained(arch, data, config["measure"], seed=cfg.seed) if config.get("measure") else {}
    curve: list[dict[str, Any]] = []

    def callback(m: Any) -> str | None:
        row = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.to_dict().items()}
        curve.append(row)
        return None if report(row) else "stop"

    device = trial_device(config)
    ckpt = Path(config["checkpoint_dir"]) / f"trial_{config['number']:05d}.pt" if config.get("checkpoint_dir") else None
    result = train(arch, data, cfg, callback, progress=False, device=device, checkpoint_path=ckpt,
                   final_eval=final_eval)
    if ckpt is not None and result.status != OutcomeStatus.COMPLETED:
        ckpt.unlink(missing_ok=True)  # only COMPLETE trials keep their weights
    status = result.status
    info: dict[str, Any] = {"test_top1": result.test["top1"]} if result.test else {}
    if plugin_sha256:
        info["plugin_sha256"] = plugin_sha256
    if measured:
        info["measured"] = measured
    return Outcome(status, curve, result.reason, time.perf_counter() - t0, info)


# -- early stopping in process ------------------------------------------------------------------------------


class Stopper:
    """The scheduler's say after each epoch, for runners that call the trial body in process.

    ``scheduler``: ``moasha`` (every objective), ``asha`` (the first objective only, through the same
    successive-halving rule) or ``none``. ``values(row)`` maps a reported row to the objective values."""

    def __init__(self, scheduler: str, directions: Sequence[str], max_t: int, grace: int, eta: float):
        from mixnas.moasha import MOASHA

        self.scheduler, self.max_t = scheduler, max_t
        self.core = None
        if scheduler != "none":
            dirs = tuple(directions) if scheduler == "moasha" else (directions[0],)
            self.core = MOASHA(dirs, max_t=max_t, grace=grace, eta=eta)

    def keep_going(self, trial_id: str, epoch: int, values: Sequence[float | None]) -> bool:
        """Whether a trial that just finished ``epoch`` with objective ``values`` trains on."""
        if self.core is None or epoch >= self.max_t:
            return True
        if self.scheduler == "asha":
            values = list(values)[:1]
        from mixnas.moasha import CONTINUE

        return self.core.on_result(trial_id, epoch, list(values)) == CONTINUE


# -- the local runner ---------------------------------------------------------------------------------------


class Driver(Protocol):
    """What :class:`LocalRunner` needs of a search driver (:class:`mixnas.search_driver.Search`)."""

    settings: Any  # scheduler, grace, eta
    directions: list[str]
    max_epochs: int
    objectives: Sequence[Any]  # each with a ``metric``

    def next_candidate(self) -> Candidate | None: ...

    def objective_values(self, digest: str, curve: list[dict[str, Any]]) -> dict[str, float | None]: ...

    def finish(self, number: int, outcome: Outcome) -> str: ...

    def close(self) -> None: ...


class LocalRunner:
    """Runs a search's trials one after another in this process (tests, and ``--scheduler`` logic without Ray)."""

    def __init__(self, search: Driver, body: Callable[[dict[str, Any], Callable], Outcome] = run_candidate):
        self.search, self.body = search, body
        s = search.settings
        self.stopper = Stopper(s.scheduler, search.directions, search.max_epochs, s.grace, s.eta)

    def run(self) -> None:
        search = self.search
        while (cand := search.next_candidate()) is not None:
            def report(row: dict[str, Any], cand: Candidate = cand) -> bool:
                vals = search.objective_values(cand.digest, [row])
                return self.stopper.keep_going(str(cand.number), int(row.get("epoch", 0)),
                                               [vals[o.metric] for o in search.objectives])

            try:
                outcome = self.body(cand.config(), report)
            except Exception as err:  # noqa: BLE001 - a failed trial is recorded, the search goes on
                outcome = Outcome(OutcomeStatus.ERROR, [], f"{type(err).__name__}: {err}")
            search.finish(cand.number, outcome)
        search.close()


__all__ = ["MEASURES", "Candidate", "Driver", "LocalRunner", "Outcome", "Stopper", "forget_data", "load_data",
           "measure_untrained", "run_candidate", "trial_device", "trial_plugins"]
