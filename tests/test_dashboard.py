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
from mixnas.search import LocalRunner, Search, SearchSettings

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
    assert par["data"][0]["type"] == "parcoords" and {d["label"] for d in par["data"][0]["dimensions"]} >= {"stem_dim"}
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
