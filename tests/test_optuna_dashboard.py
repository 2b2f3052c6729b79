"""optuna-dashboard (the `dashboard` extra) on a finished mixnas study, through `mixnas dashboard --serve
--optuna-dashboard`, checked over its REST API and in headless Chromium (the page after its JavaScript ran)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from search_helpers import fake_body, write_space

from mixnas.browser import dump_dom, find_chromium
from mixnas.search_driver import Search, SearchSettings
from mixnas.trial import LocalRunner

ROOT = Path(__file__).resolve().parents[1]


def _port_pair() -> int:
    """A port P with P and P + 1 free on 127.0.0.1 (the report is served on P, optuna-dashboard on P + 1)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two adjacent free ports on 127.0.0.1")


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    # a browser always sends Accept-Encoding; optuna-dashboard answers a request for its bundle without one
    # with HTTP 500
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            if resp.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return resp.status, body
    except urllib.error.HTTPError as err:
        return err.code, b""


def _text(dom: str) -> str:
    dom = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_optuna_dashboard_shows_a_mixnas_study(tmp_path, kind):
    if shutil.which("optuna-dashboard") is None:
        pytest.fail("optuna-dashboard is not installed: pip install -e '.[test]' (or bash .ci/run)", pytrace=False)
    if find_chromium() is None:
        pytest.fail("no Chromium: run `bash .ci/run` (it installs Debian's chromium)", pytrace=False)
    space = write_space(tmp_path, "1G")
    run = tmp_path / "run"
    storage = f"journal:{tmp_path / 'study.journal'}" if kind == "journal" else None  # None: OUT/study.db
    search = Search(SearchSettings(space=str(space), out=str(run), trials=6, sampler="random", scheduler="moasha",
                                   seed=1, storage=storage))
    LocalRunner(search, fake_body()).run()
    trials = search.trials()
    states = {t.number: t.state.name for t in trials}
    assert len(trials) >= 6 and {"COMPLETE", "PRUNED"} <= set(states.values())

    port = _port_pair()
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mixnas.cli", "dashboard", str(run), "--serve", "--port",
                                 str(port), "--optuna-dashboard"], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    base = f"http://127.0.0.1:{port + 1}"
    try:
        deadline, summaries = time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"{base}/api/studies", timeout=5)
                if status == 200:
                    summaries = json.loads(body)["study_summaries"]
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        assert summaries is not None, f"optuna-dashboard did not answer:\n{log.read_text()[-2000:]}"
        assert f"optuna-dashboard: {base}/" in log.read_text()
        [summary] = [s for s in summaries if s["study_name"] == search.study_name]
        assert summary["directions"] == ["maximize", "minimize"]
        sid = summary["study_id"]

        # the REST API: every trial, in its state, with mixnas's values and records
        status, body = _get(f"{base}/api/studies/{sid}?after=0")
        assert status == 200
        served = {t["number"]: t for t in json.loads(body)["trials"]}
        assert {n: t["state"].upper() for n, t in served.items()} == states
        for t in trials:
            attrs = {a["key"]: a["value"] for a in served[t.number]["user_attrs"]}
            assert attrs["digest"] == t.user_attrs["digest"]
            if t.state.name == "COMPLETE":
                assert [float(v) for v in served[t.number]["values"]] == pytest.approx(list(t.values))
        status, bundle = _get(f"{base}/static/bundle.js")
        assert status == 200 and len(bundle) > 100_000

        # the page, rendered by Chromium after its scripts ran: the study and each of its trials
        text = _text(dump_dom(f"{base}/dashboard/studies/{sid}/trials", budget_ms=15000, timeout=120))
        assert f"{search.study_name} (id={sid})" in text, text[:2000]
        assert f"{len(trials)} Trials" in text, text[:2000]
        for n, state in states.items():
            assert f"Trial {n} {state.capitalize()}" in text, (n, text[:3000])
        assert trials[0].user_attrs["digest"] in text  # the first trial's mixnas record is shown
    finally:
        proc.send_signal(signal.SIGTERM)  # mixnas stops optuna-dashboard on its way out
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with socket.socket() as s:  # optuna-dashboard went with it
        assert s.connect_ex(("127.0.0.1", port + 1)) != 0
