"""mixnas-bench tables: the build plan, the append-only table file, resuming, the card's statistics, and one
real build through Ray on a tiny space."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from tabular_helpers import write_space, write_table

from mixnas.cli import main
from mixnas.errors import MixnasError
from mixnas.space import load_space
from mixnas.tabular import (
    BUILD_FILE,
    TABLE_FILE,
    BuildSettings,
    Table,
    append_record,
    plan_jobs,
    read_records,
    space_archs,
)
from mixnas.tabular_stats import recommend, spearman, table_stats, write_card


def test_plan_covers_the_space_then_noise_then_long(tmp_path):
    space = load_space(write_space(tmp_path))
    archs = space_archs(space)
    assert len(archs) == space.size() == 24
    s = BuildSettings(space="x", epochs=3, fraction=0.2, noise_archs=5, noise_seeds=3, long_archs=4, long_factor=4)
    jobs = plan_jobs(s, archs)
    table = [j for j in jobs if j.setting == "table"]
    assert sorted(j.digest for j in table) == sorted(a.digest() for a in archs)
    assert [j.setting for j in jobs] == ["table"] * 24 + ["noise"] * 10 + ["long"] * 4  # that order
    assert {(j.seed, j.epochs, j.fraction) for j in table} == {(0, 3, 0.2)}
    noise = [j for j in jobs if j.setting == "noise"]
    assert {j.seed for j in noise} == {1, 2} and len({j.digest for j in noise}) == 5
    assert {(j.epochs, j.fraction, j.seed) for j in jobs if j.setting == "long"} == {(12, 1.0, 0)}
    assert len({j.key for j in jobs}) == len(jobs)
    assert [j.key for j in plan_jobs(s, archs)] == [j.key for j in jobs]  # deterministic
    other = plan_jobs(BuildSettings(space="x", seed=1, noise_archs=5, long_archs=4), archs)
    assert [j.digest for j in other[:24]] != [j.digest for j in table]  # the seed moves the order


def test_settings_are_checked():
    with pytest.raises(MixnasError, match="--fraction"):
        BuildSettings(space="x", fraction=0)
    with pytest.raises(MixnasError, match="--epochs"):
        BuildSettings(space="x", epochs=0)


def test_records_append_and_a_torn_tail_is_dropped_then_cut(tmp_path):
    path = tmp_path / TABLE_FILE
    append_record(path, {"key": "a", "v": 1})
    append_record(path, {"key": "b", "v": 2})
    good = path.stat().st_size
    with gzip.open(path) as fh:  # plain gzip readers see every record too
        assert [json.loads(line)["key"] for line in fh] == ["a", "b"]
    torn = gzip.compress(b'{"key": "c", "v": 3}\n')[:-6]  # a crash mid-append
    with open(path, "ab") as fh:
        fh.write(torn)
    records, end = read_records(path)
    assert [r["key"] for r in records] == ["a", "b"] and end == good
    append_record(path, {"key": "a", "v": 4})  # cuts the torn member off first
    records, end = read_records(path)
    assert [r["v"] for r in records] == [1, 2, 4] and end == path.stat().st_size
    (tmp_path / "junk.gz").write_bytes(b"not gzip at all")
    with pytest.raises(MixnasError, match="not a mixnas-bench table"):
        read_records(tmp_path / "junk.gz")


def test_table_reads_the_last_record_per_key(tmp_path):
    folder = write_table(tmp_path)
    table = Table(folder)
    n = len(table.records)
    rec = dict(table.records[0], status="failed")
    append_record(folder / TABLE_FILE, rec)
    again = Table(folder / TABLE_FILE)  # the file or its folder
    assert len(again.records) == n
    assert again.get(rec["digest"], rec["setting"], rec["seed"])["status"] == "failed"
    assert len(again.arch_records()) == 24 and again.epochs == 8


def test_table_errors_name_the_file(tmp_path):
    with pytest.raises(MixnasError, match="no mixnas-bench table here"):
        Table(tmp_path)
    (tmp_path / TABLE_FILE).write_bytes(gzip.compress(b'{"key": "a"}\n'))
    with pytest.raises(MixnasError, match="build.yaml is missing"):
        Table(tmp_path)
    (tmp_path / BUILD_FILE).write_text("[1, 2]\n")
    with pytest.raises(MixnasError, match="expected a mapping"):
        Table(tmp_path)


def test_spearman_and_recommendation():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == {"rho": 1.0, "n": 4}
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1])["rho"] == -1.0
    assert spearman([1, None, 3], [1, 2, 3]) == {"rho": None, "n": 2}  # pairs with a gap are left out
    within = [{"epoch": 1, "rho": 0.6}, {"epoch": 2, "rho": 0.85}, {"epoch": 3, "rho": 1.0}]
    vs_long = [{"epoch": 1, "rho": 0.5, "lo": 0.1, "hi": 0.8}, {"epoch": 2, "rho": 0.85, "lo": 0.6, "hi": 0.95},
               {"epoch": 3, "rho": 0.7, "lo": 0.4, "hi": 0.9}]
    rec = recommend(vs_long, within, 3)
    # epoch 2 ranks the long runs best, but within the sampling error of the highest fidelity: keep 3
    assert rec["grace"] == 2 and rec["max_epochs"] == 3 and rec["best_epoch"] == 2
    clear = [dict(r, lo=0.75) if r["epoch"] == 2 else r for r in vs_long]
    assert recommend(clear, within, 3)["max_epochs"] == 2  # better beyond the error: train less


def test_bootstrap_interval_of_rho_brackets_it_and_narrows_with_n():
    import random

    rng = random.Random(0)
    def sample(n):
        xs = [rng.random() for _ in range(n)]
        return xs, [x + rng.gauss(0, 0.3) for x in xs]
    small, large = spearman(*sample(12), interval=True), spearman(*sample(300), interval=True)
    for r in (small, large):
        assert r["lo"] <= r["rho"] <= r["hi"]
    assert large["hi"] - large["lo"] < (small["hi"] - small["lo"]) / 2
    assert spearman([1, 2, 3, 4], [1, 2, 3, 4], interval=True)["lo"] > 0.5


def test_card_statistics(tmp_path):
    table = Table(write_table(tmp_path))
    st = table_stats(table)
    assert st["architectures"] == 24
    assert st["cost"]["table"]["completed"] == 24 and st["cost"]["long"]["completed"] == 6
    noise = st["noise"]
    assert noise["archs"] == 4 and noise["seeds"] == 3 and len(noise["per_epoch"]) == 8
    assert all(r["median_std"] > 0 for r in noise["per_epoch"])
    fid = st["fidelity"]
    assert fid["long_archs"] == 6 and len(fid["table_vs_long"]) == 8 and len(fid["long_vs_long"]) == 32
    assert fid["long_vs_long"][-1]["rho"] == 1.0  # the reference ranks itself perfectly
    assert fid["proxies"]["macs"]["vs_table"]["n"] == 24
    front = st["fronts"]["top1_macs"]
    assert front and all(a["macs"] < b["macs"] and a["top1"] < b["top1"] for a, b in zip(front, front[1:]))
    path = write_card(table)
    text = path.read_text()
    for heading in ("## Settings", "## Noise", "## Fidelity", "## True Pareto fronts", "Consequence for the search"):
        assert heading in text
    assert json.loads((path.parent / "stats.json").read_text())["architectures"] == 24


def test_bench_build_through_ray_resumes(tmp_path, capsys):
    """A real build: 24 tiny architectures on digits, 1 epoch, with noise and long runs, in two parts."""
    space = write_space(tmp_path)
    out = tmp_path / "table"
    flags = ["--epochs", "1", "--fraction", "0.3", "--noise-archs", "1", "--noise-seeds", "2",
             "--long-archs", "1", "--long-factor", "2"]
    assert main(["bench", "build", str(space), "--out", str(out), *flags, "--limit", "3"]) == 0
    records, _ = read_records(out / TABLE_FILE)
    assert len(records) == 3 and all(r["status"] == "completed" for r in records)
    r = records[0]
    assert r["setting"] == "table" and len(r["curve"]) == 1 and r["train"]["fraction"] == 0.3
    assert r["measured"]["latency_ms"] > 0 and r["measured"]["latency_threads"] == 1
    assert set(r["measured"]["proxies"]) == {"synflow", "naswot", "grad_norm", "snip"}
    assert r["params"] > 0 and r["macs"] > 0 and r["code"] and r["worker"]["pid"]
    assert yaml.safe_load((out / BUILD_FILE).read_text())["jobs"] == {"table": 24, "noise": 1, "long": 1}
    capsys.readouterr()
    assert main(["bench", "build", str(space), "--out", str(out), "--epochs", "2"]) == 2  # not what was started
    assert "--epochs 1" in capsys.readouterr().err
    assert main(["bench", "build", str(space), "--out", str(out), "--only", "noise,long"]) == 0
    records, _ = read_records(out / TABLE_FILE)
    longs = [r for r in records if r["setting"] == "long"]
    assert len(records) == 5 and len(longs) == 1
    assert len(longs[0]["curve"]) == 2 and longs[0]["train"]["fraction"] == 1.0 and not longs[0]["measured"]
    assert [r for r in records if r["setting"] == "noise"][0]["seed"] == 1
    assert "0 to run now" in _rerun(space, out, capsys)  # nothing left for these settings
    space.write_text(space.read_text().replace("choice: [16, 32]", "choice: [16, 48]"))
    assert main(["bench", "build", str(space), "--out", str(out)]) == 2
    assert "differs from the one this build started with" in capsys.readouterr().err


def _rerun(space, out, capsys) -> str:
    capsys.readouterr()
    main(["bench", "build", str(space), "--out", str(out), "--only", "noise,long"])
    return capsys.readouterr().out


def test_card_command(tmp_path, capsys):
    folder = write_table(tmp_path)
    assert main(["bench", "card", str(folder)]) == 0
    assert "## Fidelity" in capsys.readouterr().out and (folder / "CARD.md").is_file()
    assert main(["bench", "card", str(tmp_path / "nowhere")]) == 2


def test_card_says_when_a_free_measure_ranks_the_long_runs_better_than_the_table():
    from mixnas.tabular_stats import _proxy_note

    f = {"table_vs_long": [{"epoch": 1, "rho": 0.5}, {"epoch": 2, "rho": 0.7}],
         "proxies": {"params": {"vs_long": {"rho": 0.9, "lo": 0.8, "hi": 0.95, "n": 30}},
                     "synflow": {"vs_long": {"rho": 0.75, "lo": 0.5, "hi": 0.9, "n": 30}}}}
    note = _proxy_note(f)
    assert "params" in note and "+0.900" in note and "synflow" not in note
    f["proxies"]["params"]["vs_long"]["lo"] = 0.65  # within the error of the table's 0.7: nothing to say
    assert _proxy_note(f) == ""
