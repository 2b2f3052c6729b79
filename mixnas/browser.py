"""Headless Chromium: the one module that runs a browser (the dashboard's render check and screenshots).

Debian's ``chromium`` (``apt-get install chromium``) started with ``--headless --no-sandbox --disable-gpu
--disable-background-networking`` and no network: :func:`dump_dom` returns the page's DOM after its scripts
ran (under a virtual time budget), :func:`screenshot` writes a PNG. As root Chromium needs ``--no-sandbox``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mixnas.errors import MixnasError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
         "--mute-audio", "--disable-extensions", "--disable-component-update", "--disable-sync",
         # WebGL (3-D scatter, parallel coordinates) in software, as there is no GPU
         "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]


def find_chromium() -> str | None:
    """The path of a Chromium / Chrome binary (``MIXNAS_CHROMIUM`` first), or None."""
    env = os.environ.get("MIXNAS_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise MixnasError("no Chromium found (apt-get install chromium, or set MIXNAS_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="mixnas-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            raise MixnasError(f"Chromium did not finish within {timeout:.0f} s") from None


def _address(page: str | Path) -> str:
    return page if isinstance(page, str) and page.startswith(("http://", "https://")) else Path(page).resolve().as_uri()


def dump_dom(page: str | Path, budget_ms: int = 10000, timeout: float = 90) -> str:
    """The DOM of ``page`` (a file, or an http:// address such as a local server's) after its scripts ran for
    ``budget_ms`` of virtual time."""
    proc = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", _address(page)], timeout)
    if proc.returncode != 0 or not proc.stdout:
        raise MixnasError(f"Chromium failed to render {page} (exit {proc.returncode}): {proc.stderr[-400:]}")
    return proc.stdout


def screenshot(page: str | Path, png: str | Path, width: int = 1400, height: int = 2400, budget_ms: int = 10000,
               timeout: float = 90) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of ``page``."""
    png = Path(png).resolve()
    proc = _run([f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}", f"--screenshot={png}",
                 Path(page).resolve().as_uri()], timeout)
    if not png.is_file():
        raise MixnasError(f"Chromium wrote no screenshot of {page} (exit {proc.returncode}): {proc.stderr[-400:]}")
    return png
