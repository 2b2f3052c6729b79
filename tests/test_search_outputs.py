"""What a search writes and says while it runs: pareto/ holds exactly the current front, invalid candidates
get a console line as infeasible ones do."""

from __future__ import annotations

from search_helpers import TOKEN_MIXERS, fake_body, write_space

from mixnas.config import ArchConfig
from mixnas.search_driver import Search, SearchSettings
from mixnas.trial import LocalRunner, Outcome


def test_pareto_folder_holds_exactly_the_current_front(tmp_path):
    space = write_space(tmp_path, "1G")
    out = tmp_path / "run"
    s = Search(SearchSettings(space=str(space), out=str(out), trials=2, scheduler="none", sampler="random",
                              max_epochs=1))
    # the first trial (ratio 2: more MACs) is alone on the front until the second (ratio 1: fewer MACs and
    # more accurate) dominates it: its file must go
    for ratio in (2, 1):
        s.study.enqueue_trial({"arch.stem.dim": 8, "arch.stages.depth": 1,
                               "arch.stages.channel_mixer.mlp.channel_hidden_dim": ratio})
    seen = []

    def body(config, report):
        ratio = dict(ArchConfig.from_dict(config["arch"]).stages[0].channel_mixer.params)["channel_hidden_dim"]
        top1 = 50.0 if ratio == 16 else 90.0  # dim 8 x ratio 2 = 16
        row = {"epoch": 1, "val_top1": top1, "partial": 1.0}
        report(row)
        seen.append(sorted(p.name for p in (out / "pareto").glob("*.yaml")) if (out / "pareto").exists() else [])
        return Outcome("completed", [row], "", 0.01)

    LocalRunner(s, body).run()
    front = s.front()
    assert len(front) == 1 and front[0].number == 1
    assert seen[1] == ["trial_00000.yaml"]  # the first trial was on the front, with its file, before the second
    assert sorted(p.name for p in (out / "pareto").glob("*.yaml")) == ["trial_00001.yaml"]
    import yaml

    assert [e["trial"] for e in yaml.safe_load((out / "pareto.yaml").read_text())["pareto"]] == [1]


def test_invalid_candidates_get_a_console_line(tmp_path):
    text = write_space(tmp_path, "1G").read_text().replace(
        TOKEN_MIXERS["mixer"], "      attention: {num_heads: {choice: [3, 5, 2]}}\n")  # dim 8/16/24: 3, 5 often fail
    space = tmp_path / "heads.yaml"
    space.write_text(text)
    lines: list[str] = []
    s = Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=4, scheduler="none",
                              sampler="random", max_epochs=1, seed=1), log=lines.append)
    LocalRunner(s, fake_body()).run()
    invalid = [t for t in s.trials() if t.user_attrs.get("status") == "invalid"]
    assert invalid, "the space should yield invalid candidates"
    for t in invalid:
        line = next(x for x in lines if x.startswith(f"trial {t.number}: invalid ("))
        assert "num_heads" in line and "not trained" in line
