"""End-to-end runs through Ray Tune on digits: searches and a study (one shared local Ray session)."""

from __future__ import annotations

import os

import pytest
from search_helpers import write_space

ray = pytest.importorskip("ray")

NAN_DIGEST = "a5f6ebd8f9c949bc"  # stem 8, depth 1, ratio 1 of the tiny space
DIE_DIGEST = "9d49f6cb80ded68f"  # stem 8, depth 1, ratio 2
KILL_DIGEST = "6ba1dfa790c7f33c"  # stem 16, depth 2, ratio 1: its worker is SIGKILLed after epoch 1


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    marker = tmp_path_factory.mktemp("die") / "died"
    os.environ["MIXNAS_TEST_NAN_DIGEST"] = NAN_DIGEST  # the workers inherit the driver's environment
    os.environ["MIXNAS_TEST_DIE_ONCE"] = f"{DIE_DIGEST}:{marker}"
    os.environ["MIXNAS_TEST_KILL_AT_EPOCH"] = f"{KILL_DIGEST}:1:{marker.parent / 'killed'}"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield marker
    ray.shutdown()
    for var in ("MIXNAS_TEST_NAN_DIGEST", "MIXNAS_TEST_DIE_ONCE", "MIXNAS_TEST_KILL_AT_EPOCH"):
        os.environ.pop(var, None)


def test_search_through_ray_on_digits(ray_session, tmp_path):
    from mixnas.ray_io import run_search
    from mixnas.search_driver import Search, SearchSettings, slot_gaps

    space = write_space(tmp_path, "1G")
    search = Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=10, max_epochs=2,
                                   sampler="random", scheduler="moasha", concurrency=2, seed=1,
                                   keep_checkpoints=True))
    for ratio in (1, 2):  # the NaN-injected and the dying architectures come first
        search.study.enqueue_trial({"arch.stem.dim": 8, "arch.stages.depth": 1,
                                    "arch.stages.channel_mixer.mlp.channel_hidden_dim": ratio})
    run_search(search)
    assert ray_session.exists()  # the worker did die once
    trials = search.trials()
    by_state = {}
    for t in trials:
        by_state.setdefault(t.state.name, []).append(t)
    counted = [t for t in trials if "duplicate_of" not in t.user_attrs and not t.user_attrs.get("requeued")]
    assert len(counted) == 10 and "RUNNING" not in by_state
    assert by_state.get("COMPLETE")
    for t in by_state["COMPLETE"]:
        assert t.user_attrs["fidelity"] == 2 and len(t.user_attrs["curve"]) == 2
        assert t.user_attrs["wall_time_s"] > 0 or "duplicate_of" in t.user_attrs
        assert 0 <= t.values[0] <= 100 and t.values[1] == t.user_attrs["macs"]
    for t in by_state.get("PRUNED", []):
        assert t.user_attrs["fidelity"] < 2 and t.values is None
    nan_seen = False
    for t in trials:
        if t.user_attrs.get("digest") == NAN_DIGEST and "duplicate_of" not in t.user_attrs:
            assert t.state.name == "FAIL" and "nan" in t.user_attrs["fail_reason"]
            nan_seen = True
        if t.user_attrs.get("digest") == DIE_DIGEST and "duplicate_of" not in t.user_attrs:
            assert t.state.name in ("COMPLETE", "PRUNED")  # its worker died once; the retry succeeded
    assert nan_seen
    trained = [t.user_attrs["digest"] for t in trials if t.user_attrs.get("status") in ("completed", "pruned")
               and "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained))
    assert (tmp_path / "run" / "trials.csv").exists() and (tmp_path / "run" / "pareto.yaml").exists()
    assert search.front()
    ckpts = tmp_path / "run" / "checkpoints"
    for t in trials:  # weights kept for COMPLETE trials only; every trained trial says where and when it ran
        own = "duplicate_of" not in t.user_attrs and t.user_attrs.get("status") in ("completed", "pruned")
        assert (ckpts / f"trial_{t.number:05d}.pt").exists() == (own and t.state.name == "COMPLETE")
        if own:
            assert t.user_attrs["worker_time"] > t.user_attrs["worker_start"] > 0 and t.user_attrs["pid"] > 0
    gaps = slot_gaps(trials)
    assert gaps and all(g >= 0 for g in gaps)


def test_a_worker_killed_mid_trial_is_retried(ray_session, tmp_path):
    """SIGKILL of a Ray worker after its trial reported epoch 1 of 3: Tune restarts the trial (up to
    --retries), the record's curve has each epoch once, and the search completes with every trial told."""
    from mixnas.ray_io import run_search
    from mixnas.search_driver import Search, SearchSettings

    killed = ray_session.parent / "killed"
    space = write_space(tmp_path, "1G")
    search = Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=3, max_epochs=3,
                                   sampler="random", scheduler="none", concurrency=1, seed=4))
    search.study.enqueue_trial({"arch.stem.dim": 16, "arch.stages.depth": 2,
                                "arch.stages.channel_mixer.mlp.channel_hidden_dim": 1})
    run_search(search)
    assert killed.exists() and "epoch 1" in killed.read_text()  # the worker was killed mid-trial
    trials = search.trials()
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    victim = [t for t in trials if t.user_attrs.get("digest") == KILL_DIGEST and "duplicate_of" not in t.user_attrs]
    assert len(victim) == 1 and victim[0].state.name == "COMPLETE"
    assert [row["epoch"] for row in victim[0].user_attrs["curve"]] == [1, 2, 3]  # restarted, not appended
    counted = [t for t in trials if "duplicate_of" not in t.user_attrs and not t.user_attrs.get("requeued")]
    assert len(counted) == 3 and all(t.state.name == "COMPLETE" for t in counted)


def test_moasha_scheduler_wrapper_decisions():
    from mixnas.ray_io import STATUS_KEY, MOASHAScheduler

    class T:
        def __init__(self, i):
            self.trial_id = i

    s = MOASHAScheduler(["top1", "macs"], ["max", "min"], max_t=4, grace=1, eta=2)
    row = {STATUS_KEY: "running", "epoch": 1}
    assert s.on_trial_result(None, T("a"), {**row, "top1": 50, "macs": 10}) == "CONTINUE"
    assert s.on_trial_result(None, T("b"), {**row, "top1": 40, "macs": 20}) == "STOP"
    assert s.on_trial_result(None, T("c"), {STATUS_KEY: "diverged", "epoch": 1}) == "CONTINUE"
    assert s.on_trial_result(None, T("a"), {**row, "epoch": 4, "top1": 60, "macs": 10}) == "CONTINUE"


def test_study_through_ray_writes_each_result_and_resumes(ray_session, tmp_path, capsys):
    import json
    from pathlib import Path

    from mixnas.cli import main

    base = Path(__file__).resolve().parent.parent / "examples" / "strip_mlp_1m_fmnist.yaml"
    (tmp_path / "s.yaml").write_text(f"""\
name: tiny_ray
base: {base}
task: {{dataset: digits, image_size: 16, test_eval: true}}
train: {{epochs: 1, batch_size: 64}}
factors:
  strip_width: {{path: "stages[0].token_mixer.strip_width", levels: [1, 3]}}
seeds: 2
resources: {{cpu: 1}}
paper: {{citation: "made up", metric: test_top1, ranks: {{1: 1, 3: 2}}}}
""")
    run = tmp_path / "run"
    assert main(["study", "run", str(tmp_path / "s.yaml"), "--out", str(run)]) == 0
    keys = ("strip_width-1-s0", "strip_width-1-s1", "strip_width-3-s0", "strip_width-3-s1")
    pids = set()
    for key in keys:
        rec = json.loads((run / "results" / f"{key}.json").read_text())
        assert rec["status"] == "completed" and rec["epochs"] == 1 and 0 < rec["top1"] <= 100
        assert len(rec["curve"]) == 1 and rec["worker"]["pid"] > 0 and rec["key"] == key
        assert 0 < rec["test_top1"] <= 100  # the final model scored on digits' test split, on the worker
        pids.add(rec["worker"]["pid"])
    assert pids and os.getpid() not in pids  # trained on Ray's workers, not in the driver
    err = capsys.readouterr().err
    assert "through Ray Tune" in err and "[4/4]" in err
    (run / "results" / "strip_width-3-s1.json").unlink()  # as if the run had crashed during that trial
    assert main(["study", "run", str(tmp_path / "s.yaml"), "--out", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "3 already done, 1 to run" in err and "[4/4] strip_width-3-s1: completed" in err
    assert "test_top1 (the test split, final model, %)" in (run / "report.md").read_text()
