"""Small helpers every layer needs, defined once: atomic writes, plain-data conversion, finiteness checks and
number formatting.

Kept free of mixnas imports (only the standard library), so any module, from the config up to the CLI, may
use it without creating an import circle.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` through a temporary file in the same folder, then rename it over ``path``: a reader (or a
    crash, or a full disk) never sees half a file. The temporary file is removed when the write fails; the
    file's permission bits are kept when it exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """``obj`` as strict JSON (no NaN or infinity: they are written as null by :func:`plain` first), atomically."""
    atomic_write_text(path, json.dumps(plain(obj), indent=indent, allow_nan=False) + "\n")


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON/YAML data: mappings become ``dict`` with string keys, sequences ``list``, non-finite
    floats ``None``, str enums their value; anything else that is not a bool, int, float, str or None becomes its ``str``."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str):
        return str(obj)  # a str enum (a trial status) as its plain value: yaml.safe_dump refuses subclasses
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    return str(obj)


def is_finite(v: Any) -> bool:
    """Whether ``v`` is a real finite number (bools are not numbers here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def finite_or_none(v: Any) -> float | None:
    """``v`` when it is a finite number, else ``None`` (how a missing or diverged metric is stored)."""
    return v if is_finite(v) else None


def parse_si(text: str) -> float:
    """A count written with an SI suffix, as budgets and MAC targets are: '2M', '1.5e6', '3G', '150_000' (the
    inverse of :func:`human`); ValueError when it is not one."""
    text = text.strip().replace("_", "")
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:].upper(), 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def human(n: float | None, unit: str = "") -> str:
    """A count with an SI suffix: 12_620_000_000 -> '12.62G'; ``None`` -> '—'."""
    if n is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def short_number(v: Any, digits: int = 4) -> str:
    """A value for a table cell: large counts in millions, other floats to ``digits`` significant digits,
    missing or non-finite values as '-'."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if abs(v) >= 1e5:
        return f"{v / 1e6:.3g}M"
    if isinstance(v, float) and abs(v) >= 1e3:
        return f"{v:.0f}"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def duration(seconds: float) -> str:
    """Elapsed time as m:ss, or h:mm:ss from an hour on."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
