"""bench._report.write_section replaces its own section of BENCHMARKS.md and leaves the others intact."""

from __future__ import annotations

import pytest

from bench._report import HEADER, write_section


def test_sections_are_appended_replaced_in_place_and_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section("alpha", "first alpha", path)
    write_section("beta", "| a | b |\n|---|---|\n| 1 | 2 |\n", path)
    write_section("alpha", "second alpha", path)
    text = path.read_text()
    assert text.startswith(HEADER)
    assert "first alpha" not in text and text.count("second alpha") == 1
    assert text.index("second alpha") < text.index("| 1 | 2 |")  # replaced where it was
    assert text.count("<!-- BEGIN alpha -->") == 1 and text.count("<!-- END beta -->") == 1
    assert "## beta\n\n| a | b |" in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_hand_written_text_outside_sections_survives(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Mine\n\nnotes\n")
    write_section("gamma", "numbers", path)
    write_section("gamma", "new numbers", path)
    assert path.read_text().startswith("# Mine\n\nnotes\n\n<!-- BEGIN gamma -->")


def test_a_section_without_its_end_marker_is_not_clobbered(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("<!-- BEGIN delta -->\nhalf a section\n")
    with pytest.raises(ValueError, match="end marker"):
        write_section("delta", "x", path)
    assert path.read_text() == "<!-- BEGIN delta -->\nhalf a section\n"
    with pytest.raises(ValueError):
        write_section("bad --> title", "x", path)
