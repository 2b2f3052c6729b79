"""Where a result came from: the mixnas version, the git commit of the checkout, and the machine.

Every result file carries this, so a number can always be traced to the code that produced it.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch


def code_version() -> dict[str, Any]:
    """``{"mixnas": version, "git_commit": sha or None, "git_dirty": bool or None}``, and ``"plugins"``: each
    loaded plugin's spec, file and sha256 (:mod:`mixnas.plugins`) when any is loaded."""
    from mixnas.plugins import loaded_plugins

    out = dict(_own_version())
    plugins = loaded_plugins()
    if plugins:
        out["plugins"] = [p.record() for p in plugins]
    return out


@functools.lru_cache(maxsize=1)
def _own_version() -> dict[str, Any]:
    from mixnas import __version__

    root = Path(__file__).resolve().parent.parent
    commit = dirty = None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0:
            commit = out.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout, or no git: the version number alone identifies the code
    return {"mixnas": __version__, "git_commit": commit, "git_dirty": dirty}


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The software and hardware a measurement ran on (threads as set at the time of the call)."""
    device = torch.device(device)
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(device)
    return info
