"""Running a study's trials and reporting them.

:func:`run_study` materialises the study (``study.yaml`` and ``trials/KEY.yaml``), then trains every trial
that has no completed ``results/KEY.json`` yet with the trial body of the search
(:func:`mixnas.trial.run_candidate`): through Ray Tune by default (the search's trainable and Tuner settings,
:func:`mixnas.ray_io.run_trials`; local Ray, or a cluster given its address), or one after another in this
process. Each result file is written (atomically) as soon as its
trial ends, so a crashed or interrupted run continues where it stopped when run again; failed trials are
recorded and retried on the next run. :func:`report` reads the result files and writes ``report.md``,
``report.csv``, ``report.tex`` and ``report.html`` (the seed spread per level).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mixnas.errors import MixnasError
from mixnas.plugins import reload_recorded, shipped
from mixnas.runs import lock_run_folder
from mixnas.study import Study, StudyTrial, level_label, materialise
from mixnas.util import atomic_write_json
from mixnas.vocab import OutcomeStatus


def result_path(run_dir: Path, key: str) -> Path:
    return run_dir / "results" / f"{key}.json"


def read_result(run_dir: Path, key: str) -> dict[str, Any] | None:
    p = result_path(run_dir, key)
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # atomic writes never tear a file: this one was damaged or edited
        raise MixnasError(f"{p}: not a readable result file ({type(err).__name__}: {str(err)[:120]}); it was left "
                          "as it is: restore it, or delete it to train that trial again") from None
    if not isinstance(rec, dict) or "status" not in rec:
        raise MixnasError(f"{p}: not a result file (expected a JSON object with a 'status'); it was left as it "
                          "is: restore it, or delete it to train that trial again")
    return rec


def trial_config(study: Study, t: StudyTrial, number: int, data_dir: str | None = None) -> dict[str, Any]:
    """The config :func:`mixnas.trial.run_candidate` trains."""
    return {"arch": t.arch.to_dict(), "train": t.train, "dataset": study.task["dataset"],
            "data_dir": data_dir or study.task.get("data_dir"), "digest": t.digest, "number": number,
            "threads": max(1, int(study.resources.get("cpu", 1))), "gpu": study.resources.get("gpu", 0.0),
            "final_eval": bool(study.task.get("test_eval", False)), "plugins": shipped()}


def trial_record(t: StudyTrial, outcome: Any, cost: Any) -> dict[str, Any]:
    """A trial's result record: status, final validation top-1, params, MACs, the curve, where it ran (with the
    sha256 of the plugins its worker loaded) and the driver's code version (mixnas's and the plugins')."""
    from mixnas.provenance import code_version

    last = outcome.curve[-1] if outcome.curve else {}
    return {"key": t.key, "label": t.label, "level": t.level, "seed": t.seed, "digest": t.digest,
            "status": str(outcome.status), "reason": outcome.reason, "top1": last.get("val_top1"),
            "epochs": last.get("epoch", 0), "params": cost.params, "macs": cost.macs,
            "test_top1": outcome.info.get("test_top1"), "wall_time_s": round(outcome.wall_time_s, 3),
            "curve": outcome.curve, "worker": {k: v for k, v in outcome.info.items() if k != "test_top1"},
            "code": code_version()}


def run_local(study: Study, t: StudyTrial, number: int, data_dir: str | None = None,
              body: Callable | None = None) -> Any:
    """Train one trial in this process; its :class:`mixnas.trial.Outcome` (an exception becomes an error)."""
    from mixnas.trial import Outcome, run_candidate

    body = body or run_candidate
    t0 = time.perf_counter()
    try:
        return body(trial_config(study, t, number, data_dir), lambda row: True)
    except MixnasError:
        raise  # a missing dataset is the user's to fix, not a failed trial
    except Exception as err:  # noqa: BLE001 - a failed trial is recorded, the study goes on
        return Outcome(OutcomeStatus.ERROR, [], f"{type(err).__name__}: {err}", time.perf_counter() - t0)


def check_data(study: Study, t: StudyTrial, data_dir: str | None) -> None:
    """Load the dataset once on the driver so a missing or malformed one stops the run before launch."""
    from mixnas import trial
    from mixnas.train import TrainConfig

    trial.load_data(study.task["dataset"], data_dir or study.task.get("data_dir"), t.arch,
                     TrainConfig.from_dict(t.train), test=bool(study.task.get("test_eval", False)))
    trial.forget_data()  # the workers load their own copy


def run_study(study: Study, run_dir: str | Path, *, resume: bool = False, data_dir: str | None = None,
              body: Callable | None = None, log: Callable[[str], None] | None = None, runner: str = "ray",
              address: str | None = None) -> list[dict[str, Any]]:
    """Materialise, then train every trial without a completed result; returns all result records.

    ``runner="ray"`` runs the trials through Ray Tune (:func:`mixnas.ray_io.run_trials`: local Ray, or the
    cluster at ``address``), as many at once as the study's ``resources`` allow; ``"local"`` (or a ``body``,
    the tests' stand-in for training) runs them one after another in this process. Either way each result
    file is written the moment its trial ends."""
    if runner not in ("ray", "local"):
        raise MixnasError(f"unknown study runner {runner!r}; allowed: ray, local")
    run_dir = Path(run_dir)
    if (run_dir / "study.yaml").exists() and not resume:
        raise MixnasError(f"{run_dir}: already holds a study run; pass --resume to continue it")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run_folder(run_dir)  # a second `study run --resume` on this folder is refused, not interleaved
    try:
        return _run_study(study, run_dir, resume, data_dir, body, log, runner, address)
    finally:
        lock.close()


def _run_study(study: Study, run_dir: Path, resume: bool, data_dir: str | None, body: Callable | None,
               log: Callable[[str], None], runner: str, address: str | None) -> list[dict[str, Any]]:
    from mixnas.complexity import complexity

    trials = materialise(study, run_dir)
    todo = [t for t in trials if (read_result(run_dir, t.key) or {}).get("status") != OutcomeStatus.COMPLETED]
    done = len(trials) - len(todo)
    local = runner == "local" or body is not None
    log(f"study {study.name}: {len(trials)} trials ({len(study.levels())} levels x {len(study.seeds)} seeds), "
        f"{done} already done, {len(todo)} to run "
        f"({'in this process' if local else 'through Ray Tune' + (f' on {address}' if address else '')}); "
        f"trial files in {run_dir / 'trials'}")
    t_start, ended, costs = time.perf_counter(), [0], {}

    def finish(t: StudyTrial, outcome: Any) -> None:
        if t.arch.digest() not in costs:
            costs[t.arch.digest()] = complexity(t.arch)
        rec = trial_record(t, outcome, costs[t.arch.digest()])
        atomic_write_json(result_path(run_dir, t.key), rec, indent=1)
        ended[0] += 1
        elapsed = time.perf_counter() - t_start
        eta = elapsed / ended[0] * (len(todo) - ended[0])
        top1 = "—" if rec["top1"] is None else f"{rec['top1']:.2f}"
        log(f"[{done + ended[0]}/{len(trials)}] {t.key}: {rec['status']} top1 {top1} ({rec['wall_time_s']:.0f} s; "
            f"about {eta / 60:.1f} min left)" + (f": {rec['reason']}" if rec["reason"] else ""))

    if local:
        for t in todo:
            finish(t, run_local(study, t, trials.index(t), data_dir, body))
    elif todo:
        from mixnas.ray_io import run_trials

        if address is None:
            check_data(study, todo[0], data_dir)
        by_key = {t.key: t for t in todo}
        configs = {t.key: trial_config(study, t, trials.index(t), data_dir) for t in todo}
        run_trials(configs, lambda key, outcome: finish(by_key[key], outcome), out=run_dir,
                   resources={"cpu": float(study.resources.get("cpu", 1)),
                              "gpu": float(study.resources.get("gpu", 0))}, address=address, log=log)
    return [read_result(run_dir, t.key) for t in trials]


# -- report ----------------------------------------------------------------------------------------------------


def matched_lines(spec: dict[str, Any]) -> list[str]:
    """A line per ``match_macs`` level of a resolved study: its width or depth and its MACs against the target."""
    from mixnas.study_match import match_line

    return [match_line(level_label({f: lv}), rec) for f, by_level in (spec.get("matched") or {}).items()
            for lv, rec in by_level.items()]


def report(run_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write report.md / .csv / .tex / .html for a study run from its result files; returns the paths."""
    from mixnas.dashboard import seed_spread_html
    from mixnas.study_stats import (
        kendall_tau,
        level_table,
        order_line,
        power_line,
        tau_line,
        to_csv,
        to_latex,
        to_markdown,
    )

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    spec_path = run_dir / "study.yaml"
    if not spec_path.is_file():
        raise MixnasError(f"{run_dir}: not a study run (no study.yaml; start one with mixnas study run)")
    spec = yaml.safe_load(spec_path.read_text())
    reload_recorded(spec.get("plugins"), f"{spec_path}: plugins")  # the run's mixers, as every reader of a run
    names = list(spec["factors"])
    grid = [[]]
    for f in names:
        grid = [g + [v] for g in grid for v in spec["factors"][f]["levels"]]
    labels = [level_label(dict(zip(names, combo))) for combo in grid]
    baseline = level_label({f: spec["baseline"][f] for f in names})
    paper = spec.get("paper") or {}
    metric = paper.get("metric", "top1")

    values: dict[str, list[float]] = {label: [] for label in labels}
    cost: dict[str, tuple[int | None, int | None]] = {}
    missing = failed = 0
    for key in spec["trials"]:
        rec = read_result(run_dir, key)
        if rec is None:
            missing += 1
            continue
        cost[rec["label"]] = (rec.get("params"), rec.get("macs"))
        if rec["status"] != OutcomeStatus.COMPLETED or rec.get(metric) is None:
            failed += 1
            continue
        values[rec["label"]].append(float(rec[metric]))
    if not any(values.values()):
        raise MixnasError(f"{run_dir}: no completed trials to report yet")

    rows = level_table(values, baseline, paper.get("values"), cost, paper.get("ranks"))
    measured = {r.label: r.mean for r in rows if r.mean is not None}
    split = "the test split, final model" if metric == "test_top1" else "validation, last epoch"
    notes = [f"{metric} ({split}, %) over seeds {spec['seeds']}; 95% CI from the t distribution; p: Welch's "
             f"t-test against the baseline across seeds."]
    if paper:
        ranks, numbers = paper.get("ranks") or {}, paper.get("values", {})
        use_ranks = bool(ranks) and sum(k in measured for k in numbers) < 2  # too few numbers: the stated order
        notes.append(tau_line(*kendall_tau(measured, ranks if use_ranks else numbers))
                     + (" (against the paper's stated order)" if use_ranks else ""))
        if ranks:
            notes.append("Paper's stated order (worst first): " + order_line(ranks))
        notes.append(f"Paper values: {paper['citation']}" + (f" ({paper['note']})" if paper.get("note") else ""))
    else:
        notes.append("No paper values in this study.")
    notes += matched_lines(spec)
    power = power_line(values, baseline)
    if power:
        notes.append(power)
    if missing or failed:
        notes.append(f"Incomplete: {missing} trial(s) not run yet, {failed} failed or without {metric}.")
    title = f"{spec['name']}: {', '.join(names)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"report.{ext}" for ext in ("md", "csv", "tex", "html")}
    paths["md"].write_text(to_markdown(rows, title, notes))
    paths["csv"].write_text(to_csv(rows, spec["name"]))
    paths["tex"].write_text(to_latex(rows, title, notes))
    paths["html"].write_text(seed_spread_html(values, paper.get("values", {}), title, metric))
    return paths
