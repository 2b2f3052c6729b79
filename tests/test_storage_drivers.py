"""Several `mixnas search` drivers on one study (Optuna's distributed optimisation) through a shared storage:
a real PostgreSQL server (Debian's `postgresql`, started here on 127.0.0.1) and a JournalStorage file.

Each driver is its own process with its own local Ray and run folder; the study must end with every trial
recorded once: trial numbers unique, none left RUNNING, each with one result, each driver's `--trials` met
by its own trials, and every trial a driver logged present under its name (none lost, none duplicated).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from search_helpers import fake_body, write_space

from mixnas import optuna_io
from mixnas.errors import MixnasError
from mixnas.search_driver import Search, SearchSettings
from mixnas.trial import LocalRunner

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = ("infeasible", "invalid")


# -- a PostgreSQL server of our own ----------------------------------------------------------------------------


def _pg_bin() -> Path:
    """The newest PostgreSQL server binaries (Debian puts them in /usr/lib/postgresql/VERSION/bin)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: [int(x) for x in re.findall(r"\d+", d)])
    found = [Path(d) for d in dirs if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK)]
    if not found and shutil.which("initdb") and shutil.which("pg_ctl"):
        found = [Path(shutil.which("pg_ctl")).parent]
    if not found:
        pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are not installed (looked in "
                    "/usr/lib/postgresql/*/bin and PATH): run `bash .ci/run`, which installs Debian's postgresql "
                    "package, or `apt-get install postgresql`", pytrace=False)
    return found[-1]


def _as_server_user(folder: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` system user (the package creates
    it) in a folder that user owns; as anyone else, run it as oneself."""
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, and there is no `postgres` system user to run the PostgreSQL server as: "
                    "run `bash .ci/run` (Debian's postgresql package creates it)", pytrace=False)
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root without runuser (util-linux) to start PostgreSQL as `postgres`", pytrace=False)
    for path in (folder, *folder.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
    return [runuser, "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 (a free port, its socket in its own temp folder, trust authentication,
    fsync off); yields ``postgresql://mixnas@127.0.0.1:PORT``. Stopped and removed at the end."""
    try:
        import psycopg  # noqa: F401 - the driver SQLAlchemy 2.1 uses for postgresql://
    except ImportError:
        pytest.fail("psycopg (3) is not installed: pip install -e '.[test]' (or bash .ci/run)", pytrace=False)
    bindir = _pg_bin()
    # in /tmp itself: the `postgres` user must be able to reach it (the tests' scratch folder is root's 0700)
    root = Path(tempfile.mkdtemp(prefix="mixnas-pg-", dir="/tmp"))
    data, log = root / "data", root / "server.log"
    prefix = _as_server_user(root)
    try:
        init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "mixnas", "-A", "trust",
                               "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                              capture_output=True, text=True, timeout=120)
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}{init.stderr}"
        for _ in range(3):  # a free port may be taken between asking and listening
            port = _free_port()
            start = subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                 f"-h 127.0.0.1 -p {port} -k {root} -F -c max_connections=200", "start"],
                capture_output=True, text=True, timeout=120)
            if start.returncode == 0:
                break
        else:
            pytest.fail(f"pg_ctl start failed:\n{start.stdout}{start.stderr}\n{log.read_text()[-2000:]}",
                        pytrace=False)
        yield f"postgresql://mixnas@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: str, name: str) -> str:
    """A fresh database on the server; its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


# -- several drivers ---------------------------------------------------------------------------------------------


def run_drivers(tmp_path: Path, storage: str, names=("a", "b"), trials: int = 4) -> dict[str, dict]:
    """Start one `mixnas search --join` per name at the same moment, each with its own run folder and its own
    local Ray (its own RAY_TMPDIR); wait for all. Returns per name: its log, its driver id, its Ray folder."""
    space = write_space(tmp_path, "1G")
    drivers = {}
    for name in names:
        ray_tmp = Path(tempfile.mkdtemp(prefix=f"r{name}", dir=os.environ.get("RAY_TMPDIR", "/tmp")))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp), "OMP_NUM_THREADS": "1"}
        env.pop("RAY_ADDRESS", None)
        out = tmp_path / f"driver_{name}"
        cmd = [sys.executable, "-m", "mixnas.cli", "search", "--space", str(space), "--dataset", "digits",
               "--trials", str(trials), "--max-epochs", "1", "--scheduler", "none", "--sampler", "random",
               "--concurrency", "1", "--storage", storage, "--study-name", "shared", "--join", "--out", str(out),
               "--seed", "0"]
        log = tmp_path / f"driver_{name}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        drivers[name] = {"proc": proc, "log": log, "out": out, "ray_tmp": ray_tmp}
    deadline = time.monotonic() + 300
    for d in drivers.values():
        try:
            d["rc"] = d["proc"].wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            d["proc"].kill()
            d["rc"] = d["proc"].wait()
    for name, d in drivers.items():
        assert d["rc"] == 0, f"driver {name} exited {d['rc']}:\n{d['log'].read_text()[-3000:]}"
        d["text"] = d["log"].read_text()
        d["id"] = yaml.safe_load((d["out"] / "search.yaml").read_text())["resolved"]["driver"]
    return drivers


def check_shared_study(storage: str, drivers: dict[str, dict], trials: int) -> dict:
    """Every trial recorded once, none lost; returns the numbers the report gives."""
    study = optuna_io.load_existing(optuna_io.storage_for(storage), "shared")
    records = study.get_trials(deepcopy=False)
    numbers = [t.number for t in records]
    assert sorted(numbers) == list(range(len(records))), "trial numbers not unique and contiguous"
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in records), "a trial was left unfinished"
    ids = {d["id"]: name for name, d in drivers.items()}
    assert len(ids) == len(drivers)
    by_driver: dict[str, list] = {name: [] for name in drivers}
    for t in records:
        a = t.user_attrs
        assert a.get("driver") in ids, f"trial {t.number} has no driver of this test: {a.get('driver')}"
        by_driver[ids[a["driver"]]].append(t)
        if t.state.name == "COMPLETE":  # exactly one result: the values are the recorded objectives
            assert list(t.values) == [a["objectives"]["top1"], a["objectives"]["macs"]]
        assert a.get("status") == "completed", f"trial {t.number}: {a.get('status')} {a.get('fail_reason')}"
    out = {"total": len(records), "lost": 0, "duplicated": 0}
    nodes = {}
    for name, d in drivers.items():
        mine = by_driver[name]
        trained = [t for t in mine if "duplicate_of" not in t.user_attrs and t.user_attrs["status"] not in SKIPPED]
        reused = [t for t in mine if "duplicate_of" in t.user_attrs]
        assert len(trained) == trials, f"driver {name} trained {len(trained)}, asked for {trials}"
        assert re.search(rf"trials {trials}/{trials} done", d["text"]), d["text"][-2000:]
        # what the driver says it recorded is what the study holds under its name, and nothing else
        logged = [int(n) for n in re.findall(r"^trial (\d+): ", d["text"], re.M)]
        assert len(logged) == len(set(logged)), f"driver {name} recorded a trial twice"
        assert set(logged) == {t.number for t in mine}, (name, sorted(logged), sorted(t.number for t in mine))
        nodes[name] = {t.user_attrs["node_id"] for t in trained}
        out[name] = {"trained": len(trained), "re-used": len(reused), "records": len(mine)}
    logged_all = [int(n) for d in drivers.values() for n in re.findall(r"^trial (\d+): ", d["text"], re.M)]
    out["lost"] = len(set(numbers) - set(logged_all))
    out["duplicated"] = len(logged_all) - len(set(logged_all))
    assert out["lost"] == 0 and out["duplicated"] == 0
    # each driver trained on its own local Ray: no node in common, one session folder in each RAY_TMPDIR
    names = list(drivers)
    assert not nodes[names[0]] & nodes[names[1]], "the drivers' Ray instances share a node"
    for d in drivers.values():
        assert list(d["ray_tmp"].glob("ray/session_2*")), f"no Ray session under {d['ray_tmp']}"
    # an architecture trained by two drivers at the same moment is trained twice (allowed, reported)
    digests = [t.user_attrs["digest"] for t in records if "duplicate_of" not in t.user_attrs]
    out["trained twice"] = len(digests) - len(set(digests))
    starts = {n: min(t.datetime_start for t in by_driver[n]) for n in names}
    ends = {n: max(t.datetime_complete for t in by_driver[n]) for n in names}
    out["overlap_s"] = round((min(ends.values()) - max(starts.values())).total_seconds(), 1)
    return out


def test_two_drivers_on_postgresql(postgres, tmp_path):
    url = new_database(postgres, "two_drivers")
    t0 = time.monotonic()
    drivers = run_drivers(tmp_path, url)
    result = check_shared_study(url, drivers, trials=4)
    print(f"postgresql: {result}, {time.monotonic() - t0:.1f} s")


def test_two_drivers_on_a_journal_file(tmp_path):
    url = f"journal:{tmp_path / 'shared.journal'}"
    t0 = time.monotonic()
    drivers = run_drivers(tmp_path, url)
    result = check_shared_study(url, drivers, trials=4)
    print(f"journal: {result}, {time.monotonic() - t0:.1f} s")


# -- the driver bookkeeping without Ray ---------------------------------------------------------------------------


def joined(tmp_path: Path, name: str, storage: str, trials: int = 4, **kw) -> Search:
    space = write_space(tmp_path, "1G")
    return Search(SearchSettings(space=str(space), out=str(tmp_path / name), trials=trials, sampler="random",
                                 scheduler="none", storage=storage, study_name="shared", join=True, **kw))


def crash(search: Search) -> None:
    """A driver that dies without telling its trials: nothing is written, and the run folder's lock goes (as
    the OS drops it when the process ends)."""
    release = getattr(search, "release", None)
    if release is not None:
        release()


def test_join_needs_a_shared_storage_and_a_study_name(tmp_path):
    with pytest.raises(MixnasError, match="--join needs --storage"):
        joined(tmp_path, "a", None)
    space = write_space(tmp_path, "1G")
    with pytest.raises(MixnasError, match="--join needs"):
        Search(SearchSettings(space=str(space), out=str(tmp_path / "b"), storage=f"journal:{tmp_path / 'j'}",
                              join=True))


def test_joined_drivers_reuse_each_others_records_and_resume_only_their_own(tmp_path):
    storage = f"journal:{tmp_path / 'shared.journal'}"
    a = joined(tmp_path, "a", storage)
    LocalRunner(a, fake_body()).run()
    first = {t.user_attrs["digest"]: t.number for t in a.trials() if "duplicate_of" not in t.user_attrs}
    assert len(first) == 4

    calls: list[str] = []
    b = joined(tmp_path, "b", storage)  # the same --seed, another driver: another sampler seed
    assert b.driver != a.driver and b.sampler_seed != a.sampler_seed and b.counted == 0
    LocalRunner(b, fake_body(calls)).run()
    assert len(calls) == 4 and not set(calls) & set(first)  # nothing a recorded already was trained again
    mine = [t for t in b.trials() if t.user_attrs["driver"] == b.driver]
    for t in mine:
        if "duplicate_of" in t.user_attrs and t.user_attrs["digest"] in first:
            assert t.user_attrs["duplicate_of"] == first[t.user_attrs["digest"]]

    # a third driver crashes with a trial in training; driver a resumes: c's trial is not a's to re-queue
    c = joined(tmp_path, "c", storage, trials=1)
    cand = c.next_candidate()
    crash(a)
    a2 = joined(tmp_path, "a", storage, trials=5, resume=True)
    assert a2.driver == a.driver and a2.counted == 4 and a2.requeued == 0
    running = c.study._storage.get_trial(c.live[cand.number]._trial_id)
    assert running.state.name == "RUNNING"
    LocalRunner(a2, fake_body()).run()
    assert a2.counted == 5
    c.finish(cand.number, fake_body()(cand.config(), lambda row: True))  # c's own result is still accepted
    c.close()
    c2 = joined(tmp_path, "c", storage, trials=1, resume=True)
    assert c2.requeued == 0 and c2.counted == 1
    records = a2.study.get_trials(deepcopy=False)
    assert sorted(t.number for t in records) == list(range(len(records)))
    assert all(t.state.name != "RUNNING" for t in records)


def test_resume_requeues_a_crashed_joined_drivers_own_trials(tmp_path):
    storage = f"journal:{tmp_path / 'shared.journal'}"
    a, b = joined(tmp_path, "a", storage, trials=2), joined(tmp_path, "b", storage, trials=2)
    ca, cb = a.next_candidate(), b.next_candidate()  # both "crash" while training
    crash(a)
    crash(b)
    a2 = joined(tmp_path, "a", storage, trials=2, resume=True)
    assert a2.requeued == 1
    states = {t.number: t.state.name for t in a2.study.get_trials(deepcopy=False)}
    assert states[ca.number] == "FAIL" and states[cb.number] == "RUNNING"


def test_drivers_that_create_the_tables_of_an_empty_database_at_once(postgres):
    """PostgreSQL's CREATE TABLE races with another session's: every driver must still open the study."""
    url = new_database(postgres, "race")
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def driver() -> None:
        try:
            barrier.wait()
            storage = optuna_io.storage_for(url)
            optuna_io.open_study(storage, "race", ["max", "min"], optuna.samplers.RandomSampler(), resume=False,
                                 join=True)
        except BaseException as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=driver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert optuna.study.get_all_study_names(optuna_io.storage_for(url)) == ["race"]


def test_storage_errors_are_one_line(postgres):
    port = _free_port()
    with pytest.raises(MixnasError, match=r"cannot open the database") as err:
        optuna_io.storage_for(f"postgresql://mixnas:secret@127.0.0.1:{port}/nothing")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)
