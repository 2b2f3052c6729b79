"""The shared helpers: atomic writes keep the old file on failure, plain data is JSON-safe, formatting."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from mixnas.util import (
    atomic_write_json,
    atomic_write_text,
    duration,
    finite_or_none,
    human,
    is_finite,
    plain,
    short_number,
)
from mixnas.vocab import OutcomeStatus


def test_atomic_write_replaces_and_keeps_mode(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "a.txt"
    atomic_write_text(p, "one")
    os.chmod(p, 0o600)
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert p.stat().st_mode & 0o777 == 0o600
    assert [f.name for f in p.parent.iterdir()] == ["a.txt"]  # no temporary file left


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "a.json"
    atomic_write_json(p, {"a": 1})

    def boom(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_plain_is_strict_json() -> None:
    data = {1: (1.5, float("nan")), "p": Path("/x"), "b": True, "n": None, "inf": -math.inf}
    out = plain(data)
    assert out == {"1": [1.5, None], "p": "/x", "b": True, "n": None, "inf": None}
    json.dumps(out, allow_nan=False)
    status = plain({"s": OutcomeStatus.COMPLETED})["s"]
    assert type(status) is str and status == "completed"


def test_finiteness() -> None:
    assert is_finite(1) and is_finite(2.5)
    assert not any(is_finite(v) for v in (True, None, "1", math.nan, math.inf))
    assert finite_or_none(math.nan) is None and finite_or_none(3.0) == 3.0


def test_formatting() -> None:
    assert human(12_620_000_000) == "12.62G" and human(1500, "B") == "1.50KB" and human(None) == "—"
    assert short_number(None) == "-" and short_number(math.inf) == "-"
    assert short_number(12_345_678) == "12.3M" and short_number(79.8512) == "79.85" and short_number(1234.5) == "1234"
    assert short_number("tpe") == "tpe" and short_number(7) == "7"
    assert duration(65) == "1:05" and duration(3725) == "1:02:05" and duration(-3) == "0:00"
