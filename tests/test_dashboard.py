"""`mixnas dashboard`: figure functions, the HTML report of one and of two runs, --serve, and a real browser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from search_helpers import fake_body, write_space

from mixnas import analysis as A
from mixnas import browser
from mixnas import dashboard as D
from mixnas.cli import main
from mixnas.search_driver import Search, SearchSettings
from mixnas.trial import LocalRunner

ROOT = Path(__file__).resolve().parents[1]


def noisy_body():
    """fake_body with a per-architecture offset (-4..4 points), so that bigger is not always better."""
    inner = fake_body()

    def body(config, report):
        shift = int(config["digest"][:4], 16) % 9 - 4

        def shifted(row):
            row["val_top1"] += shift  # the same dict goes into the curve
            return report(row)
        return inner(config, shifted)
    return body


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs of different spaces (fake training, ~1 s each): MLP-Mixer under MO-ASHA (pruned and
    re-used trials) and Strip-MLP with a MACs budget that leaves some candidates infeasible."""
    base = tmp_path_factory.mktemp("dash")
    out = {}
    for tm, budget, scheduler, trials in (("mixer", "1G", "moasha", 16), ("strip", "0.09M", "none", 10)):
        space = write_space(base, budget, tm)
        out[tm] = base / f"run_{tm}"
        LocalRunner(Search(SearchSettings(space=str(space), out=str(out[tm]), trials=trials, sampler="random",
                                          scheduler=scheduler, seed=1)), noisy_body()).run()
    return out


def test_runs_hold_every_category(runs):
    mixer, strip = A.load_run(runs["mixer"]), A.load_run(runs["strip"])
    cats = {r["category"] for r in mixer.records} | {r["category"] for r in strip.records}
    assert {"pareto", "dominated", "pruned", "duplicate", "infeasible"} <= cats
    assert mixer.space == "tiny" and strip.space == "tiny_strip"


def test_figure_functions_build_the_expected_traces(runs):
    run = A.load_run(runs["mixer"])
    fig = D.figure_json(D.pareto_figure(A.pareto_points(run, ["top1", "macs"])))
    names = [t["name"] for t in fig["data"]]
    assert names[-1] == "Pareto front" and "dominated" in names and "pruned (lower fidelity)" in names
    front = fig["data"][-1]
    assert front["mode"] == "lines+markers" and len(front["x"]) == sum(r["category"] == "pareto" for r in run.records)
    assert "digest" in front["hovertemplate"] and "isotropic mixer" in front["customdata"][0][2]
    fig3 = D.figure_json(D.pareto_figure(A.pareto_points(run, ["top1", "macs", "params"])))
    assert {t["type"] for t in fig3["data"]} == {"scatter3d"}
    ideal, ref = A.reference_point([run])
    hv = D.figure_json(D.hv_figure({"a": A.hv_history(run, ideal, ref)}))
    assert len(hv["data"]) == 2 and hv["data"][1]["xaxis"] == "x2"
    edf = D.figure_json(D.edf_figure(A.design_space_edfs([run], n_boot=20), None))
    assert [t["fill"] if "fill" in t else "line" for t in edf["data"]] == ["toself", "line"]
    par = D.figure_json(D.parallel_figure(A.parallel_dims(run)))
    assert par["data"][0]["type"] == "parcoords" and {d["label"] for d in par["data"][0]["dimensions"]} >= {"stem dim"}
    imp = D.figure_json(D.importance_figure(A.importances(run)))
    assert imp["data"][0]["type"] == "bar" and imp["data"][0]["orientation"] == "h"
    trends = A.param_trends(run)
    tr = D.figure_json(D.trends_figure(trends))
    assert sum(t["type"] == "box" for t in tr["data"]) == len(trends) >= 2


def _status(dom: str) -> str:
    m = re.search(r'<pre id="report-status"[^>]*>(.*?)</pre>', dom, re.S)
    assert m, "no #report-status in the DOM"
    return m.group(1)


def test_cli_one_run(runs, capsys):
    assert main(["dashboard", str(runs["mixer"])]) == 0
    report = runs["mixer"] / "report.html"
    assert f"wrote {report}" in capsys.readouterr().out
    page = report.read_text()
    assert page.count("Plotly.newPlot(") == page.count('class="plotly-graph-div"') >= 7
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # plotly.js included once
    assert "cdn" not in page.split("<body>")[1].lower()
    hrefs = re.findall(r'<a href="([^"#]+\.yaml)"', page)
    run = A.load_run(runs["mixer"])
    assert len(hrefs) == sum(1 for r in run.records if r.get("arch"))  # every architecture links to a file
    assert all((report.parent / h).is_file() for h in hrefs)
    assert any(h.startswith("pareto/") for h in hrefs) and any("report_files/trials/" in h for h in hrefs)


def test_cli_two_runs_of_different_spaces(runs, tmp_path, capsys):
    out = tmp_path / "cmp" / "cmp.html"
    assert main(["dashboard", str(runs["mixer"]), str(runs["strip"]), "-o", str(out), "--js", "file"]) == 0
    page = out.read_text()
    assert (tmp_path / "cmp" / "cmp_files" / "plotly.min.js").stat().st_size > 1e6
    assert '<script src="cmp_files/plotly.min.js">' in page and len(page) < 1e6
    assert "tiny (run_mixer)" in page and "tiny_strip (run_strip)" in page
    assert "complexity-normalised error EDF" in page and "Fronts side by side" in page
    assert 'repeat(2, minmax(0, 1fr))' in page  # per-run figures side by side
    hrefs = re.findall(r'<a href="([^"#]+\.yaml)"', page)
    assert hrefs and all(h.startswith("cmp_files/trials/") for h in hrefs)  # the runs lie outside: copies
    assert all((out.parent / h).is_file() for h in hrefs)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a search run folder" in err and "Traceback" not in err


def test_serve_binds_to_localhost(runs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "mixnas.cli", "dashboard", str(runs["strip"]), "--serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = None
        deadline = time.time() + 60
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"serving (http://127\.0\.0\.1:\d+/report\.html)", line)
            url = m.group(1) if m else None
            assert line or proc.poll() is None, "the server exited"
        assert url, "no 'serving' line"
        body = urllib.request.urlopen(url, timeout=10).read()
        assert b'id="report-status"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _png_colours(path: Path) -> int:
    from PIL import Image  # Pillow comes with fvcore

    with Image.open(path) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


@pytest.mark.skipif(browser.find_chromium() is None, reason="no chromium binary (apt-get install chromium; "
                                                            ".ci/run installs it)")
def test_report_renders_in_headless_chromium(runs, tmp_path):
    out = tmp_path / "both.html"
    info = D.build_report([A.load_run(runs["mixer"]), A.load_run(runs["strip"])], out, n_boot=50)
    dom = browser.dump_dom(out)
    assert _status(dom) == f"errors=0 figures={info['figures']}/{info['figures']}"
    assert dom.count('class="main-svg"') >= info["figures"]
    png = browser.screenshot(out, tmp_path / "both.png", width=1200, height=1600)
    assert _png_colours(png) > 200  # not blank: plots, text and colour scales drew


# -- the console's counts, legibility, empty columns ---------------------------------------------------------------

COUNTS = re.compile(r"(?:trials (?P<done>\d+)/\d+ done, (?P<running>\d+) running|trials: (?P<trained>\d+) trained) \| "
                    r"complete (?P<complete>\d+) pruned (?P<pruned>\d+) failed (?P<failed>\d+) "
                    r"infeasible (?P<infeasible>\d+) invalid (?P<invalid>\d+) re-used (?P<reused>\d+)"
                    r"(?: requeued (?P<requeued>\d+))? \| best top1 (?P<best_top1>[\d.]+|-) \| Pareto (?P<pareto>\d+)")


def _console_numbers(line: str) -> dict[str, object]:
    """The numbers of a console progress line (``trials 14/14 done, 0 running | complete ...``) or of the
    summary's counts line (``trials: 14 trained | complete ...``)."""
    m = COUNTS.search(line)
    assert m, f"not a progress or summary line: {line}"
    got: dict[str, object] = {k: int(v) for k, v in m.groupdict().items() if v is not None and k != "best_top1"}
    got["trained"] = got.pop("done", got.get("trained"))
    got.pop("running", None)
    got.setdefault("requeued", 0)
    got["best_top1"] = None if m["best_top1"] == "-" else float(m["best_top1"])
    return got


def test_dashboard_counts_are_the_consoles(tmp_path):
    """A run with every kind of record (infeasible candidates under a low max_macs, invalid ones of a patch
    size that does not divide the image, re-used repeats, failed trials of NaN top-1, pruned ones, and a trial
    re-queued after a crash): the dashboard's summary numbers are the console's, from the last progress line
    and the summary the search printed."""
    space = write_space(tmp_path, "0.09M", "mixed")
    space.write_text(space.read_text().replace("patch_size: 4,", "patch_size: {choice: [4, 5]},"))  # 5: invalid
    out = tmp_path / "run"
    lines: list[str] = []
    settings = SearchSettings(space=str(space), out=str(out), trials=10, sampler="random", scheduler="moasha", seed=4)
    search = Search(settings, log=lines.append)
    LocalRunner(search, fake_body(nan_dims=(8,))).run()
    # a crash leaves one trial RUNNING; the resumed search fails and re-queues it, then trains 4 more
    search = Search(SearchSettings(**{**settings.to_dict(), "resume": True}), log=lines.append)
    stuck = search.study.ask()
    stuck.suggest_categorical("arch.stem.dim", [8, 16, 24])
    stuck.suggest_categorical("arch.stem.patch_size", [4, 5])
    search.release()
    search = Search(SearchSettings(**{**settings.to_dict(), "resume": True, "trials": 14}), log=lines.append)
    LocalRunner(search, fake_body(nan_dims=(8,))).run()
    summary = search.summary()

    console = _console_numbers(lines[-1])
    assert console["best_top1"] is not None
    assert _console_numbers(summary.splitlines()[0]) == console
    assert f"Pareto front: {console['pareto']} architectures" in summary

    data = D.run_summary(A.load_run(out))
    for key, value in console.items():
        assert data[key] == (value if key != "best_top1" else pytest.approx(value, abs=0.005)), key
    # every kind of record is there, and they add up
    assert min(data[k] for k in ("complete", "pruned", "failed", "infeasible", "invalid", "reused", "requeued")) >= 1
    assert data["trained"] == data["complete"] + data["pruned"] + data["failed"] == search.counted == 14
    assert data["trials"] == sum(data[k] for k in ("trained", "reused", "infeasible", "invalid", "requeued",
                                                   "running", "waiting"))
    run = A.load_run(out)
    assert data["pareto"] == sum(r["category"] == "pareto" for r in run.records) == len(search.front())
    # the plots' categories agree too: the re-queued trial is not drawn as a failure
    assert sum(r["category"] == "requeued" for r in run.records) == data["requeued"]
    assert sum(r["category"] == "failed" for r in run.records) == data["failed"]

    # the HTML summary table shows these numbers
    page_out = tmp_path / "r.html"
    D.build_report([run], page_out, n_boot=20)
    table = re.search(r'<table class="trials summary">(.*?)</table>', page_out.read_text(), re.S).group(1)
    cells = dict(re.findall(r'<td data-k="(\w+)">([^<]*)</td>', table))
    for key in ("trained", "complete", "pruned", "failed", "reused", "infeasible", "invalid", "requeued", "pareto"):
        assert cells[key] == str(data[key]), key
    assert cells["best_top1"] == f"{console['best_top1']:.2f}" == f"{data['best_top1']:.2f}"


@pytest.mark.parametrize("path, label", [
    ("arch.stages.token_mixer.strip.strip_width", "token mixer · strip · strip width"),
    ("arch.stages.token_mixer", "token mixer"),
    ("arch.stages.depth", "depth"),
    ("arch.stages[1].depth", "stage 2 · depth"),
    ("arch.stem.patch_size", "stem · patch size"),
    ("arch.stages.channel_mixer.mlp.channel_hidden_dim", "channel mixer · mlp · channel hidden dim"),
    ("depth[0]", "depth (stage 1)"),
    ("stem_dim", "stem dim"),
    ("layout", "layout"),
])
def test_param_label(path, label):
    assert D.param_label(path) == label


def test_importance_labels_are_readable(tmp_path):
    space = write_space(tmp_path, "10M", "mixed")
    out = tmp_path / "run"
    LocalRunner(Search(SearchSettings(space=str(space), out=str(out), trials=14, sampler="random",
                                      scheduler="none", seed=3)), noisy_body()).run()
    groups = A.importances(A.load_run(out))
    assert len(groups) >= 2 and any("arch.stages.token_mixer = " in g["subset"] for g in groups)
    fig = D.figure_json(D.importance_figure(groups))
    labels = [y for t in fig["data"] for y in t["y"]]
    assert labels and not any("arch." in y or "_" in y for y in labels)
    assert any(y.startswith("token mixer · strip · strip width [") for y in labels)
    names = [t["name"] for t in fig["data"]]
    assert not any("arch." in n for n in names) and any("token mixer = " in n for n in names)
    assert fig["layout"]["font"]["size"] >= 12 and fig["layout"]["yaxis"]["automargin"] is True
    one = D.figure_json(D.importance_figure(groups[:1]))  # one subset: no [k] tags
    assert not any("[" in y for y in one["data"][0]["y"])


def test_3d_pareto_is_legible(runs):
    run = A.load_run(runs["mixer"])
    fig = D.figure_json(D.pareto_figure(A.pareto_points(run, ["top1", "macs", "params"])))
    scene = fig["layout"]["scene"]
    assert [scene[a]["title"]["text"] for a in ("xaxis", "yaxis", "zaxis")] == ["MACs (M)", "parameters (M)",
                                                                                 "top-1 (%)"]
    for a in ("xaxis", "yaxis", "zaxis"):
        assert scene[a]["title"]["font"]["size"] >= 14 and scene[a]["tickfont"]["size"] >= 12
    assert scene["xaxis"]["type"] == "log" and scene["zaxis"]["type"] == "linear"
    assert scene["aspectmode"] == "cube" and scene["camera"]["eye"]["z"] < scene["camera"]["eye"]["x"]
    assert fig["layout"]["font"]["size"] >= 13 and fig["layout"]["height"] >= 560
    # 3-D markers are font glyphs, drawn larger than 2-D ones: 5 to 7 px read like 2-D's 8 to 11 (screenshot)
    sizes = {t["name"]: t["marker"]["size"] for t in fig["data"]}
    assert sizes["Pareto front"] == max(sizes.values()) >= 7 and min(sizes.values()) >= 5
    strip = D.figure_json(D.pareto_figure(A.pareto_points(A.load_run(runs["strip"]), ["top1", "macs", "params"])))
    symbols = {t["name"].split(" ")[0]: t["marker"]["symbol"] for t in strip["data"]}
    assert symbols["infeasible"] == "cross"  # "x" is the emoji U+274C in 3-D: a box without an emoji font
    front = next(t for t in fig["data"] if t["name"] == "Pareto front")
    macs = [r["macs"] for r in A.pareto_points(run, ["top1", "macs", "params"])["front"]]
    assert front["x"] == pytest.approx([m / 1e6 for m in macs])  # plotted in millions, as the title says
    two = D.figure_json(D.pareto_figure(A.pareto_points(run, ["top1", "macs"])))
    assert two["layout"]["xaxis"]["title"]["text"] == "MACs (M)" and two["layout"]["yaxis"]["title"]["text"] == "top-1 (%)"


def test_unmeasured_latency_is_hidden(runs, tmp_path):
    run = A.load_run(runs["mixer"])
    assert not run.measured("latency_ms")
    out = tmp_path / "r.html"
    D.build_report([run], out, n_boot=20)
    page = out.read_text()
    table = page.split('data-run="run_mixer"')[1].split("</table>")[0]
    heads = re.findall(r'<th data-c="(\w+)" onclick="sortTable\(this\)">([^<]+)</th>', table)
    assert "latency_ms" not in dict(heads) and {"top1", "macs", "params", "architecture"} <= set(dict(heads))
    assert dict(heads)["macs"] == "MACs (M)" and "latency" not in table
    figures = [fig for fig in re.findall(r'Plotly\.newPlot\(\s*"fig\d+",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"',
                                         page, re.S)]
    assert figures and not any("latency" in layout for _, layout in figures)  # no latency axis or title
    assert not any("latency" in data for data, _ in figures)  # nor in hover text
    assert D.table_columns([{"number": 1, "latency_ms": None, "reason": ""}]) == ["number", "architecture"]


@pytest.mark.parametrize("values, dtick", [
    ([0.015, 0.05, 0.13], "D2"),  # about a decade: 1, 2, 5 per decade, not 1..9 labelled by their digit
    ([0.02, 0.04, 0.08], None),  # under a decade: plotly's own full-number ticks
    ([1.0, 50.0, 1e6], 1),  # many decades: powers of ten
    ([], None),
])
def test_log_axis_labels_full_numbers(values, dtick):
    axis = D.log_axis(values + [None, float("nan")])
    assert axis["type"] == "log" and axis["tickformat"] == "~g" and axis.get("dtick") == dtick
