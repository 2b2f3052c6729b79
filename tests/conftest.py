"""Test-session setup.

Done at import time, before any test can import ray, optuna or matplotlib, so that nothing a test starts
writes outside one scratch folder or asks for credentials:

* ``RAY_AUTH_MODE=disabled``: otherwise the first ``ray.init`` writes an auth token under ``~/.ray``.
* ``TMPDIR``, ``RAY_TMPDIR``, ``MPLCONFIGDIR`` and ``MIXNAS_CACHE`` point into a fresh scratch folder, which
  is removed at the end unless a test failed (then its path is printed).

The scratch folder lives in ``/dev/shm`` when that is a tmpfs with room to spare, else in ``/tmp``; never in
the checkout: Ray puts AF_UNIX sockets under ``$RAY_TMPDIR/ray/session_<date>_<pid>/sockets/``, and such a
path may not exceed 107 bytes, which a folder inside a deep clone can break. Memory rather than disk because
every search test records its trials in SQLite, which syncs to disk at each of its thousands of commits (a few
ms each on a virtual disk: minutes of a suite run); no test depends on data reaching the disk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "disabled"
SHM_ROOM = 4 << 30  # bytes a tmpfs must have free to hold the scratch folder (a suite run writes far less)


def _scratch_parent() -> str | None:
    """``/dev/shm`` when it is a writable tmpfs with :data:`SHM_ROOM` free, else ``/tmp`` (else the default)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts)
        stat = os.statvfs("/dev/shm")
        if tmpfs and stat.f_bavail * stat.f_frsize >= SHM_ROOM and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    except OSError:
        pass
    return "/tmp" if os.path.isdir("/tmp") else None


SCRATCH = Path(tempfile.mkdtemp(prefix="mixnas-tests-", dir=_scratch_parent()))
for _var, _sub in (("TMPDIR", "tmp"), ("MPLCONFIGDIR", "matplotlib"), ("MIXNAS_CACHE", "cache")):
    (SCRATCH / _sub).mkdir()
    os.environ[_var] = str(SCRATCH / _sub)
os.environ["RAY_TMPDIR"] = str(SCRATCH)  # Ray adds its own "ray/" below it
tempfile.tempdir = None  # forget the cached default so that tempfile reads TMPDIR again

import pytest  # noqa: E402  (after the environment above)
import torch  # noqa: E402
from plugin_helpers import unloading_plugins  # noqa: E402  (tests/ is on sys.path: pytest puts it there)

# The CI machine has 2 cores; more threads than that only adds noise to timings and float reductions.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures("one_thread")``): one thread is as
    fast, and immune to other processes on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def forget():
    """A test's plugins unloaded when it ends (:func:`plugin_helpers.unloading_plugins`)."""
    yield from unloading_plugins()


@pytest.fixture(scope="module", autouse=True)
def _plugins_stay_in_their_module():
    """Every test module's plugins unloaded when it ends, whether or not its tests asked for ``forget``."""
    yield from unloading_plugins()


def pytest_report_header(config) -> str:
    return f"mixnas scratch folder: {SCRATCH} (torch {torch.__version__}, {torch.get_num_threads()} threads)"


def pytest_sessionfinish(session, exitstatus) -> None:
    if exitstatus != pytest.ExitCode.TESTS_FAILED:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    else:
        print(f"\nmixnas: scratch folder kept for inspection: {SCRATCH}")
