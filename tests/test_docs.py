"""The docs stay true: their marked examples run, their links and the repository files they name exist.

A fenced block in ``docs/*.md`` (or README.md) is an executed example when the line before it is a marker:

* ``<!-- test -->`` before a ``bash`` or ``python`` block: run it (bash under ``set -euo pipefail``) in a
  fresh folder per page, with this checkout on PYTHONPATH and ``mixnas`` on PATH; it must exit 0. The blocks
  of one page run in order in the same folder, so a later block may use what an earlier one wrote.
* ``<!-- test: file NAME -->`` before any block: write its text to NAME in that folder first (the reader
  sees the file the commands after it read).
* ``<!-- test: output -->`` before a ``text`` block: every line of it (spacing aside; ``...`` skips) is in the
  output of the executed block before it.
* ``<!-- test: replace "OLD" "NEW" -->`` (no block follows): the examples and files after it on the page run with
  ``OLD`` replaced by ``NEW``, for a tutorial whose budgets are minutes as written (the page says so; its
  commands run here as written apart from those budgets).

The folder holds copies of ``examples/``, ``search_spaces/``, ``studies/`` and ``bench/tables/``, so the
commands read as in a clone and nothing an example writes lands in the checkout. Examples are kept cheap (the
whole module runs in about a minute on one core); what costs more stays an unmarked block.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
ALL_MARKDOWN = [ROOT / "README.md", *PAGES]
COPIED = ["examples", "search_spaces", "studies", "bench/tables"]
TIMEOUT_S = 300

MARKER = re.compile(r"^\s*<!--\s*test(?::\s*(?P<kind>file|output)(?:\s+(?P<name>\S+))?)?\s*-->\s*$")
REPLACE = re.compile(r'^\s*<!--\s*test:\s*replace\s+"(?P<old>[^"]+)"\s+"(?P<new>[^"]*)"\s*-->\s*$')
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>```+)(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One marked fenced block: where it starts (1-based line of its fence), what it is and its text."""

    page: Path
    line: int
    kind: str  # "run", "file", "output" or "replace" (text: the old string, name: the new one)
    lang: str
    name: str | None
    text: str

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _fenced_block(lines: list[str], start: int) -> tuple[str, str, int]:
    """The info string, the dedented text and the index after the closing fence of the block at ``start``."""
    match = FENCE.match(lines[start])
    if not match:
        raise ValueError(f"line {start + 1}: a test marker must be followed by a fenced block")
    indent, ticks = len(match["indent"]), match["ticks"]
    body = []
    for i in range(start + 1, len(lines)):
        if lines[i].strip() == ticks:
            return match["info"].strip(), "\n".join(body) + "\n", i + 1
        body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
    raise ValueError(f"line {start + 1}: the fenced block is not closed")


def marked_blocks(page: Path) -> list[Block]:
    """The page's marked blocks, in order; a marker that is not followed by a fenced block is an error."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        swap = REPLACE.match(lines[i])
        if swap:
            blocks.append(Block(page, i + 1, "replace", "", swap["new"], swap["old"]))
            i += 1
            continue
        marker = MARKER.match(lines[i])
        if not marker:
            i += 1
            continue
        start = i + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        info, text, i = _fenced_block(lines, start)
        kind = marker["kind"] or "run"
        lang = info.split()[0] if info else ""
        if kind == "run" and lang not in ("bash", "python"):
            raise ValueError(f"{page.name}:{start + 1}: only bash and python blocks can run, not {lang!r}")
        if kind == "file" and not marker["name"]:
            raise ValueError(f"{page.name}:{start + 1}: `test: file` needs a file name")
        blocks.append(Block(page, start + 1, kind, lang, marker["name"], text))
    return blocks


def _workdir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with copies of the shipped inputs, and an environment whose ``mixnas`` is this checkout's."""
    work = tmp_path / "work"
    for rel in COPIED:
        shutil.copytree(ROOT / rel, work / rel, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "mixnas"
    shim.write_text(f"#!/bin/sh\nexec '{sys.executable}' -c "
                    "'import sys; from mixnas.cli import main; sys.exit(main())' \"$@\"\n")
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["RAY_TMPDIR"] = env.get("RAY_TMPDIR") or str(tmp_path / "ray")
    return work, env


def _run(block: Block, work: Path, env: dict[str, str], index: int) -> str:
    """Run one block and return its output; fail naming the block when it exits non-zero."""
    if block.lang == "bash":
        command = ["bash", "-c", "set -euo pipefail\n" + block.text]
    else:
        script = work / f"_docs_block_{index}.py"
        script.write_text(block.text)
        command = [sys.executable, script.name]
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"the example at {block.where()} exited {proc.returncode}:\n{block.text}\n"
                    f"--- output (last 4000 characters) ---\n{output[-4000:]}", pytrace=False)
    return output


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _check_output(block: Block, output: str | None) -> None:
    """Every line the page says the previous example prints is in what it printed."""
    if output is None:
        pytest.fail(f"{block.where()}: an expected output with no executed example before it", pytrace=False)
    printed = _squeeze(output)
    for line in block.text.splitlines():
        if line.strip() and line.strip() != "...":
            assert _squeeze(line) in printed, (f"{block.where()}: the example before it did not print\n  {line}\n"
                                               f"--- its output (last 4000 characters) ---\n{output[-4000:]}")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path):
    work, env = _workdir(tmp_path)
    output = None
    replaced: list[tuple[str, str]] = []
    for index, block in enumerate(marked_blocks(page)):
        if block.kind == "replace":
            replaced.append((block.text, block.name or ""))
            continue
        for old, new in replaced if block.kind != "output" else ():
            block = replace(block, text=block.text.replace(old, new))
        if block.kind == "file":
            target = work / block.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
        elif block.kind == "output":
            _check_output(block, output)
        else:
            output = _run(block, work, env, index)


def test_every_page_has_runnable_examples():
    assert PAGES, "docs/ has no pages"
    bare = [p.name for p in PAGES
            if not any(b.kind == "run" for b in marked_blocks(p))]
    assert not bare, f"pages without an executed example (mark one with <!-- test -->): {bare}"


# -- links and the files the docs name ---------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
BENCH_MODULE = re.compile(r"python -m (bench\.\w+)")
REPO_TOP = ("mixnas/", "tests/", "bench/", "search_spaces/", "studies/", "examples/", ".ci/", "docs/")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, seen = set(), {}
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("page", ALL_MARKDOWN, ids=[p.name for p in ALL_MARKDOWN])
def test_relative_links_point_to_existing_files_and_headings(page: Path):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading '#{anchor}' in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n  " + "\n  ".join(broken)


def _named_repository_paths(text: str) -> set[str]:
    """Repository paths the text names in code spans, placeholders (NAME, <family>, *, {a,b}) aside."""
    paths = set()
    for span in CODE_SPAN.findall(text):
        span = span.split("#")[0].rstrip(":,.")
        if not span.startswith(REPO_TOP) or any(c in span for c in "<>{}*$"):
            continue
        if any(part.isupper() or "NNNNN" in part for part in re.split(r"[/._-]", span) if len(part) > 1):
            continue
        paths.add(span)
    return paths


@pytest.mark.parametrize("page", ALL_MARKDOWN, ids=[p.name for p in ALL_MARKDOWN])
def test_named_repository_files_exist(page: Path):
    text = page.read_text(encoding="utf-8")
    missing = sorted(p for p in _named_repository_paths(text) if not (ROOT / p).exists())
    missing += sorted(m for m in BENCH_MODULE.findall(text) if not (ROOT / (m.replace(".", "/") + ".py")).exists())
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


def test_the_checks_above_catch_mistakes(tmp_path: Path):
    """The checkers themselves: a broken link, a missing file and an unclosed marked block are found."""
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n<!-- test -->\n```bash\necho hi\n")
    with pytest.raises(ValueError, match="not closed"):
        marked_blocks(page)
    assert _named_repository_paths("`mixnas/no_such.py` and `runs/NAME/x.yaml`, `bench/tables/NAME`") == {
        "mixnas/no_such.py"}
    assert _slug("Why this default (and `--dry-run`)") == "why-this-default-and---dry-run"
    assert "a-title" in _anchors(page)
    page.write_text('<!-- test: replace "--epochs 2" "--epochs 1" -->\n<!-- test -->\n```bash\necho --epochs 2\n```\n')
    blocks = marked_blocks(page)
    assert [(b.kind, b.text, b.name) for b in blocks][0] == ("replace", "--epochs 2", "--epochs 1")
