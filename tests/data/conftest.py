"""Data tests never see the machine's datasets or the network unless a test asks for them."""

from __future__ import annotations

import pytest

from mixnas.data import base, idx


@pytest.fixture(autouse=True)
def isolated_lookup(tmp_path, monkeypatch):
    """No $MIXNAS_DATA, an empty user cache and system folder, and a network that refuses every request."""
    monkeypatch.delenv("MIXNAS_DATA", raising=False)
    monkeypatch.delenv("MIXNAS_OFFLINE", raising=False)
    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.setattr(base, "SYSTEM_DIRS", [tmp_path / "system"])

    def no_network(url, timeout):
        raise idx.urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(idx, "_urlopen", no_network)
