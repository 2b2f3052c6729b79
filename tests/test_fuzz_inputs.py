"""Every file mixnas reads is untrusted input (issue 15): a seeded fuzz of the readers through the CLI.

Each *slot* is one file a command reads: the shipped spaces, an ``extends`` target, the shipped studies with
their recipe and base files, ArchConfig files (``examples/`` and a run's ``pareto/trial_*.yaml``), a search
run folder (``search.yaml``, ``study.db``, ``trials.csv``, ``pareto.yaml``) and a mixnas-bench table
(``build.yaml``, ``space.yaml``, ``table.jsonl.gz``, ``plan.csv``; a 24-architecture cut of
``bench/tables/fmnist32`` so that ``bench card`` stays fast). Every slot gets seeded mutations of the real file
(byte flips, truncation, line deletion and duplication, non-UTF-8 bytes, garbage lines, a value swapped for a
random scalar / list / mapping / out-of-range number, deep nesting, alias bombs; SQL edits and JSON-record edits
for the database and the table) and a fixed set of hostile inputs (empty, a directory, missing, binary, UTF-16,
NUL bytes, 1e400, a 5,000-digit integer, NaN, a billion-laughs document, an alias cycle, 100,000 levels of
nesting, a file past the size limit). Each input is fed to every command that reads the slot, in process
(``mixnas.cli.main``): check-only commands (``space check``, ``search --dry-run``, ``study check``,
``inspect``, ``dashboard``, ``export``, ``bench card``); nothing trains, and the costly leaves that are not
readers (fvcore counting, model building, ONNX writing) are stubbed.

The assertion for every input: the exit status is 0 or 2, no exception escapes, and a 2 comes with exactly
one non-empty stderr line that names the file. ``space check`` and ``search --dry-run`` must agree (the check
rejects everything the search would reject before launch). The counts are printed at the end of the session
(``fuzz inputs: N tried, ...``); ``MIXNAS_FUZZ_SCALE`` multiplies the mutation counts and ``MIXNAS_FUZZ_SEED``
replaces the seed (for long local runs).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import sqlite3
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixnas.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("MIXNAS_FUZZ_SEED", "15"))  # the number; every slot derives its own stream
SCALE = float(os.environ.get("MIXNAS_FUZZ_SCALE", "1"))
TOTALS: Counter[str] = Counter()

pytestmark = pytest.mark.usefixtures("one_thread")

MISSING, DIRECTORY = b"<missing>", b"<directory>"


# -- mutations -------------------------------------------------------------------------------------------------

SCALARS: list[Any] = [None, True, False, 0, 1, -1, 3, 7, 64, 2**31, 2**63, 10**30, -10**30, 0.5, -0.0, 1e308, 1e-308,
                      "", " ", "x", "mixer", "strip", "cascade", "fashion-mnist", "top5:max", "a" * 300, "[",
                      "{", "*", "&", "!!", "2024-01-01", "1e400", "0x10", "yes", "~", "../x.yaml", "/dev/zero"]
CONTAINERS: list[Any] = [[], [1, 2], [[[]]], {}, {"a": 1}, {"choice": []}, {"choice": [1, "a", None]},
                         {"int": [5, 1]}, {"int": [1, 10**6]}, {"float": [0, 1], "log": True},
                         {"ratio": {"choice": [0, 2]}}, ["x", "x", "x"], {"name": "mixer"}, {"rule": "double"},
                         {"multipliers": [1, 2]}, [{"a": [1, {"b": None}]}]]
NUMBER_TEXTS = ["1.0e+400", "-1.0e+400", ".nan", ".inf", "-.inf", "9" * 25, "9" * 5000, "-9" * 2, "-1", "0",
                "-0.0", "1e400", "0x7fffffffffffffff", "0o17", "1_000", "2147483648", "+.5", "0b101",
                "2001-12-14t21:59:43.10-05:00", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [{a: 1}]",
                "!!python/name:os.system", "!!str", "<<: 1", "? [a]\n: b"]
GARBAGE_LINES = ["- :", "!!python/object/apply:os.getcwd []", "&a", "*nope", "? ", "{", "[", "'", '"', "%YAML 1.1",
                 "---", "...", "\t- x", ":::", "<<: *x", "key: [unclosed", "@", "`", "|\n  text", "a: b: c",
                 "&x [*x]"]
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\x80abc", b"\xed\xa0\x80", b"\x00", b"\x1b[31m", b"\xef\xbb\xbf"]


def bomb(levels: int = 9, width: int = 10) -> str:
    """A billion-laughs value in flow style: the last item expands to ``width ** levels`` leaves."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else "{a: " * depth + "1" + "}" * depth


def _literal(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i,))
    return out


PLACEHOLDER = "FUZZ_PLACEHOLDER_VALUE"


def _swap(data: bytes, rng: random.Random, literal: str) -> bytes | None:
    """The YAML document with one random value (or key) replaced by ``literal`` (raw YAML text)."""
    try:
        tree = yaml.safe_load(data.decode())
    except Exception:  # noqa: BLE001 - the original may be anything; then no structured swap
        return None
    paths = _paths(tree)
    if not paths:
        return None
    path = rng.choice(paths)
    node = tree
    for k in path[:-1]:
        node = node[k]
    if isinstance(node, dict) and rng.random() < 0.15:  # a key instead of a value
        node[PLACEHOLDER] = node.pop(path[-1])
        literal = literal if "\n" not in literal else "x"
    else:
        node[path[-1]] = PLACEHOLDER
    text = yaml.safe_dump(tree, sort_keys=False, width=10**9)
    return text.replace(PLACEHOLDER, literal, 1).encode("utf-8", "surrogatepass")


def _random_literal(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return _literal(rng.choice(SCALARS))
    if r < 0.6:
        return _literal(rng.choice(CONTAINERS))
    if r < 0.85:
        return rng.choice(NUMBER_TEXTS)
    if r < 0.93:
        return nested(rng.choice([30, 80, 300, 3000]), rng.choice(["list", "map"]))
    return bomb(rng.choice([3, 6, 9]))


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate_text(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutation of a text file: ``(description, bytes)``."""
    kind = rng.choice(["flip", "truncate", "delete_line", "duplicate_line", "swap_lines", "bad_bytes", "garbage",
                       "swap", "swap", "swap", "swap", "number"])
    lines = _lines(data)
    if kind == "flip" and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return kind, bytes(out)
    if kind == "truncate" and data:
        return kind, data[:rng.randrange(len(data))]
    if kind == "delete_line" and len(lines) > 1:
        i = rng.randrange(len(lines))
        return f"{kind} {i + 1}", b"\n".join(lines[:i] + lines[i + 1:])
    if kind == "duplicate_line" and lines:
        i = rng.randrange(len(lines))
        return f"{kind} {i + 1}", b"\n".join(lines[:i + 1] + lines[i:])
    if kind == "swap_lines" and len(lines) > 2:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return f"{kind} {i + 1} {j + 1}", b"\n".join(lines)
    if kind == "bad_bytes":
        pos = rng.randrange(len(data) + 1)
        return kind, data[:pos] + rng.choice(BAD_BYTES) + data[pos:]
    if kind == "garbage":
        i = rng.randrange(len(lines) + 1)
        return kind, b"\n".join(lines[:i] + [rng.choice(GARBAGE_LINES).encode()] + lines[i:])
    literal = rng.choice(NUMBER_TEXTS) if kind == "number" else _random_literal(rng)
    swapped = _swap(data, rng, literal)
    if swapped is not None:
        return f"{kind} -> {literal[:40]!r}", swapped
    out = bytearray(data or b"x")
    out[rng.randrange(len(out))] = rng.randrange(256)
    return "flip", bytes(out)


def fixed_inputs(original: bytes) -> list[tuple[str, bytes]]:
    """The hostile inputs every slot gets, whatever it holds."""
    rng = random.Random(SEED)
    try:
        utf16 = original.decode().encode("utf-16")
    except UnicodeDecodeError:
        utf16 = original[::-1]
    big = b"# " + b"x" * 1000 + b"\n"
    return [
        ("empty", b""), ("whitespace", b"  \n\n\t\n"), ("null", b"null\n"), ("list", b"[]\n"), ("scalar", b"42\n"),
        ("text", b"hello world\n"), ("binary", bytes(rng.randrange(256) for _ in range(700))),
        ("nul", b"name: a\x00b\n"), ("latin-1", "name: caf\xe9\n".encode("latin-1")), ("utf-16", utf16),
        ("bom", b"\xef\xbb\xbf" + original), ("deep list", b"a: " + nested(100_000, "list").encode()),
        ("deep map", nested(20_000, "map").encode()), ("billion laughs", f"a: {bomb()}\n".encode()),
        ("alias cycle", b"a: &c [*c]\n"), ("1e400", b"x: 1.0e+400\n"), ("5000 digits", b"x: " + b"9" * 5000 + b"\n"),
        ("nan", b"x: .nan\n"), ("negative", b"x: -1\n"), ("past the size limit", big * 9000),
        ("directory", DIRECTORY), ("missing", MISSING),
    ]


# -- running the CLI -------------------------------------------------------------------------------------------


@dataclass
class Slot:
    """One file of a fixture folder and the commands that read it."""

    name: str
    template: Path  # the pristine folder, copied afresh for every input
    file: str  # the slot's file, relative to the folder
    commands: Callable[[Path], list[list[str]]]  # folder -> argv lists
    mutations: int  # seeded mutations (before MIXNAS_FUZZ_SCALE)
    mutate: Callable[[bytes, random.Random, Path], tuple[str, bytes]] | None = None
    agree: bool = False  # the commands must all give the same exit status
    fixed: tuple[str, ...] | None = None  # the fixed inputs to use (None: all)


def _place(folder: Path, rel: str, data: bytes) -> None:
    path = folder / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    if data == MISSING:
        return
    if data == DIRECTORY:
        path.mkdir()
        (path / "inside.yaml").write_text("a: 1\n")
        return
    path.write_bytes(data)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {COMMAND_TIMEOUT_S} s")


COMMAND_TIMEOUT_S = 30


def _run(argv: list[str], capsys) -> tuple[int | None, str, str | None]:
    capsys.readouterr()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(COMMAND_TIMEOUT_S)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: not a reader's answer
        return None, capsys.readouterr().err, f"SystemExit({exc.code})"
    except BaseException:  # noqa: BLE001 - exactly what this test hunts
        return None, capsys.readouterr().err, traceback.format_exc(limit=-6)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return rc, capsys.readouterr().err, None


def fuzz_slot(slot: Slot, scratch: Path, capsys) -> None:
    rng = random.Random(f"{SEED}-{slot.name}")
    original = (slot.template / slot.file).read_bytes()
    inputs = [(what, data) for what, data in fixed_inputs(original) if slot.fixed is None or what in slot.fixed]
    for _ in range(max(1, round(slot.mutations * SCALE))):
        inputs.append((slot.mutate or (lambda d, r, t: mutate_text(d, r)))(original, rng, slot.template))
    problems: list[str] = []
    logged = 0
    counts: Counter[str] = Counter()
    for i, (what, data) in enumerate(inputs):
        folder = scratch / f"{i:04d}"
        shutil.copytree(slot.template, folder, symlinks=True)
        _place(folder, slot.file, data)
        codes = []
        for argv in slot.commands(folder):
            rc, err, crash = _run(argv, capsys)
            counts["tried"] += 1
            codes.append(rc)
            where = f"input {i} ({what}) of {slot.file}: mixnas {' '.join(argv)}"
            if crash is not None:
                counts["tracebacks"] += 1
                problems.append(f"{where}: {crash}")
                continue
            counts[f"exit {rc}"] += 1
            lines = [line for line in err.splitlines() if line.strip()]
            if rc not in (0, 2):
                problems.append(f"{where}: exit status {rc}; stderr {err[-300:]!r}")
            elif rc == 2 and (len(lines) != 1 or err.count("\n") != 1):
                problems.append(f"{where}: {len(err.splitlines())} stderr lines: {err[-600:]!r}")
            elif rc == 2 and Path(slot.file).name not in lines[0]:
                problems.append(f"{where}: the error does not name {Path(slot.file).name}: {lines[0][:400]!r}")
        if os.environ.get("MIXNAS_FUZZ_LOG") and problems[logged:]:
            with open(os.environ["MIXNAS_FUZZ_LOG"], "a") as fh:
                fh.write("\n".join(problems[logged:]) + "\n")
        logged = len(problems)
        if slot.agree and len(set(codes)) > 1:
            problems.append(f"input {i} ({what}) of {slot.file}: the commands disagree: exit statuses {codes}")
        if problems and not (scratch / "kept").exists():
            (scratch / "kept").mkdir()
        if problems and problems[-1].startswith(f"input {i} "):
            keep = scratch / "kept" / f"{i:04d}"
            if data not in (MISSING, DIRECTORY):
                keep.write_bytes(data)
        shutil.rmtree(folder, ignore_errors=True)
    TOTALS.update(counts)
    TOTALS["inputs"] += len(inputs)
    summary = (f"{slot.name}: {len(inputs)} inputs, {counts['tried']} command runs: exit 0 {counts['exit 0']}, "
               f"exit 2 {counts['exit 2']}, tracebacks {counts['tracebacks']}")
    print(summary)
    assert not problems, f"{summary}\n" + "\n".join(problems[:15]) + (
        f"\n... and {len(problems) - 15} more" if len(problems) > 15 else "") + f"\n(inputs kept in {scratch}/kept)"


class _Totals:
    """Prints the counts in pytest's terminal summary (shown without ``-s``)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if TOTALS["inputs"]:
            terminalreporter.write_line(
                f"fuzz inputs: {TOTALS['inputs']} tried ({TOTALS['tried']} command runs): exit 0 {TOTALS['exit 0']}, "
                f"exit 2 {TOTALS['exit 2']}, tracebacks {TOTALS['tracebacks']}")


@pytest.fixture(scope="module", autouse=True)
def report_totals(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("mixnas-fuzz-totals"):
        manager.register(_Totals(), "mixnas-fuzz-totals")
    yield


REAL_REPORT_EVERY = 8  # one dashboard in eight draws the full report (plotly costs ~2 s); the others compute its data


def light_report(runs, out, js="inline", n_boot=400):
    """The data of ``mixnas.dashboard.build_report`` without its plotly figures (the untrusted records flow
    through every analysis function the report calls)."""
    from mixnas import analysis as A

    ideal, ref = A.reference_point(runs)
    for r in runs:
        for cost in ("macs", "params", "latency_ms"):
            A.pareto_points(r, ["top1", cost])
        A.pareto_points(r, ["top1", "macs", "params"])
        A.hv_history(r, ideal, ref)
        A.parallel_dims(r)
        A.importances(r)
        A.param_trends(r)
        A.table_rows(r)  # (Optuna's timeline of the study is drawn by the real reports only: it reopens the storage)
    A.design_space_edfs(runs, n_boot=n_boot)
    Path(out).write_text("<html></html>")
    return {"bytes": 13, "figures": 0, "files": Path(out).parent, "files_bytes": 0}


def _fake_complexity(arch):
    from mixnas import complexity

    rows = tuple(complexity.CostRow(n, 1000 * (i + 1), 10**6 * (i + 1)) for i, n in
                 enumerate(["stem"] + [f"stages.{i}" for i in range(len(arch.stages))] + ["head"]))
    return complexity.Complexity(arch.digest(), sum(r.params for r in rows), sum(r.macs for r in rows), rows)


@pytest.fixture(autouse=True)
def cheap_leaves(monkeypatch):
    """What is not a reader is stubbed: fvcore counting, model building and ONNX writing; most dashboards
    compute the report's data without drawing it (:func:`light_report`)."""
    from mixnas import dashboard

    real, calls = dashboard.build_report, [0]

    def some_real_report(*args, **kwargs):
        calls[0] += 1
        return (real if calls[0] % REAL_REPORT_EVERY == 1 else light_report)(*args, **kwargs)

    monkeypatch.setattr(dashboard, "build_report", some_real_report)
    import torch

    from mixnas import complexity, network, onnx_io

    def fake_export(module, example, input_name, output_name, path=None):
        if path is not None:
            Path(path).write_bytes(b"onnx")
        return onnx_io.Exported(b"onnx", 1, 0.0)

    monkeypatch.setattr(complexity, "complexity", _fake_complexity)
    monkeypatch.setattr(network, "build_model", lambda arch, seed=0: torch.nn.Identity())
    monkeypatch.setattr(onnx_io, "export", fake_export)


# -- the fixture folders ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    """Pristine folders: shipped spaces, studies + examples, a tiny search run, a cut of the bench table."""
    from search_helpers import fake_body, write_space

    from mixnas.search_driver import Search, SearchSettings
    from mixnas.tabular import read_records
    from mixnas.trial import LocalRunner

    base = tmp_path_factory.mktemp("fuzz-fixtures")
    out = {}
    spaces = base / "spaces"
    shutil.copytree(ROOT / "search_spaces", spaces)
    (spaces / "child.yaml").write_text("name: child\nextends: strip_mlp.yaml\nconstraints: {max_macs: 100M}\n")
    out["spaces"] = spaces
    tree = base / "tree"
    shutil.copytree(ROOT / "studies", tree / "studies", ignore=shutil.ignore_patterns("results"))
    shutil.copytree(ROOT / "examples", tree / "examples")
    out["tree"] = tree
    run = base / "run" / "run"
    run.parent.mkdir()
    space = write_space(base / "run", "1G", "mixed")
    with pytest.MonkeyPatch.context() as mp:  # the run's numbers do not matter, its files do: no fvcore counts
        mp.setattr("mixnas.complexity.complexity", _fake_complexity)
        LocalRunner(Search(SearchSettings(space=str(space), out=str(run), trials=6, sampler="random",
                                          scheduler="moasha", seed=1)), fake_body()).run()
    (run / "search.log").unlink()
    out["run"] = run.parent
    table = base / "table"
    table.mkdir()
    src = ROOT / "bench" / "tables" / "fmnist32"
    for name in ("build.yaml", "space.yaml", "plan.csv"):
        shutil.copy(src / name, table / name)
    records, _ = read_records(src / "table.jsonl.gz")
    keep = [r for r in records if r["setting"] == "table"][:24]
    digests = {r["digest"] for r in keep}
    keep += [r for r in records if r["setting"] != "table" and r["digest"] in digests]
    with open(table / "table.jsonl.gz", "wb") as fh:
        for r in keep:
            fh.write(gzip.compress((json.dumps(r) + "\n").encode(), mtime=0))
    out["table"] = table
    return out


def _front_trial(run_parent: Path) -> str:
    return str(yaml.safe_load((run_parent / "run" / "pareto.yaml").read_text())["pareto"][0]["trial"])


# -- structured mutations of the binary slots ------------------------------------------------------------------

JSON_VALUES: list[Any] = [None, True, 0, -1, 2**70, 1e308, float("nan"), float("inf"), "", "x", [], [1, "a"], {},
                          {"name": "mixer"}, {"stages": []}, [[[]]], "COMPLETE", {"a": {"b": {"c": None}}}]


def _json_literal(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(["[" * 5000 + "]" * 5000, "1" + "0" * 5000, "-" + "9" * 400, "1e999", "NaN", "{"])
    return json.dumps(rng.choice(JSON_VALUES))


def mutate_db(data: bytes, rng: random.Random, template: Path) -> tuple[str, bytes]:
    """Byte-level damage, or an SQL edit of the study's records (attributes, values, states, tables)."""
    if rng.random() < 0.3:
        return mutate_bytes(data, rng)
    tmp = template.parent / f"db-{rng.random()}.sqlite"
    tmp.write_bytes(data)
    con = sqlite3.connect(tmp)
    edits = [
        ("user attr", "UPDATE trial_user_attributes SET value_json = ? WHERE trial_user_attribute_id IN "
                      "(SELECT trial_user_attribute_id FROM trial_user_attributes ORDER BY random() LIMIT 3)",
         lambda: (_json_literal(rng),)),
        ("system attr", "UPDATE trial_system_attributes SET value_json = ?", lambda: (_json_literal(rng),)),
        ("study attr", "UPDATE study_system_attributes SET value_json = ?", lambda: (_json_literal(rng),)),
        ("value", "UPDATE trial_values SET value = ?",
         lambda: (rng.choice([None, "abc", float("nan"), 1e308, -1, 2**62]),)),
        ("value type", "UPDATE trial_values SET value_type = ?", lambda: (rng.choice(["FINITE", "BOGUS", None]),)),
        ("state", "UPDATE trials SET state = ?", lambda: (rng.choice(["BOGUS", "RUNNING", "WAITING", None, "FAIL"]),)),
        ("param", "UPDATE trial_params SET param_value = ?, distribution_json = ?",
         lambda: (rng.choice([1e308, -1, None]), _json_literal(rng))),
        ("direction", "UPDATE study_directions SET direction = ?", lambda: (rng.choice(["BOGUS", "NOT_SET"]),)),
        ("study name", "UPDATE studies SET study_name = ?", lambda: (rng.choice(["other", "", "run"]),)),
        ("datetime", "UPDATE trials SET datetime_start = ?", lambda: (rng.choice(["yesterday", None, 5]),)),
        ("drop table", "DROP TABLE IF EXISTS trial_values", lambda: ()),
        ("drop table", "DROP TABLE IF EXISTS version_info", lambda: ()),
        ("delete rows", "DELETE FROM trial_user_attributes WHERE key = 'arch'", lambda: ()),
        ("schema version", "UPDATE alembic_version SET version_num = ?", lambda: (rng.choice(["v9.9", "x"]),)),
    ]
    what, sql, args = rng.choice(edits)
    params = args()
    try:
        con.execute(sql, params)
        con.commit()
    except sqlite3.Error:
        pass
    con.close()
    out = tmp.read_bytes()
    tmp.unlink()
    return f"sql {what} {params!r}"[:120], out


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["flip", "truncate", "zero page", "append"])
    out = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == "truncate":
        del out[rng.randrange(len(out)):]
    elif kind == "zero page":
        start = rng.randrange(0, len(out), 512)
        out[start:start + 512] = bytes(min(512, len(out) - start))
    else:
        out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
    return kind, bytes(out)


def mutate_table(data: bytes, rng: random.Random, template: Path) -> tuple[str, bytes]:
    """Damage to the gzip stream, or a JSON edit of one record (a field swapped, dropped or made huge)."""
    r = rng.random()
    if r < 0.3:
        return mutate_bytes(data, rng)
    if r < 0.35:
        return "gzip bomb", data + gzip.compress(b" " * (300 << 20), compresslevel=9)
    records, _ = read_records_plain(data)
    i = rng.randrange(len(records))
    rec = records[i]
    paths = _paths(rec)
    path = rng.choice(paths)
    node = rec
    for k in path[:-1]:
        node = node[k]
    if rng.random() < 0.2 and isinstance(node, dict):
        del node[path[-1]]
        what = f"record {i}: drop {'.'.join(map(str, path))}"
        line = json.dumps(rec)
    else:
        node[path[-1]] = PLACEHOLDER
        literal = _json_literal(rng)
        what = f"record {i}: {'.'.join(map(str, path))} -> {literal[:30]}"
        line = json.dumps(rec).replace(f'"{PLACEHOLDER}"', literal)
    blob = b"".join(gzip.compress((line if j == i else json.dumps(x)).encode() + b"\n", mtime=0)
                    for j, x in enumerate(records))
    return what, blob


def read_records_plain(data: bytes) -> tuple[list[dict[str, Any]], None]:
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line.strip()], None


# -- the slots -------------------------------------------------------------------------------------------------


def _space_commands(name: str) -> Callable[[Path], list[list[str]]]:
    def commands(folder: Path) -> list[list[str]]:
        f = str(folder / f"{name}.yaml")
        return [["space", "check", f, "--draws", "20"], ["search", "--space", f, "--dry-run", "--out", str(folder / "dry")]]
    return commands


def _study(rel: str) -> Callable[[Path], list[list[str]]]:
    return lambda folder: [["study", "check", str(folder / rel)]]


def _run_commands(folder: Path) -> list[list[str]]:
    run = str(folder / "run")
    return [["dashboard", run, "-o", str(folder / "report.html"), "--bootstrap", "10"],
            ["export", run, "--trial", "0", "--onnx", str(folder / "x.onnx")]]


UNREAD = ("empty", "binary", "directory", "missing")  # for files the commands do not read (trials.csv, plan.csv)
BINARY = UNREAD + ("text", "utf-16", "past the size limit")  # for the database and the gzip table (not YAML)
SOME = BINARY + ("billion laughs", "deep list", "1e400", "5000 digits")  # a YAML file whose reader is fuzzed elsewhere


def _slots(fx: dict[str, Path]) -> list[Slot]:
    spaces, tree, run, table = fx["spaces"], fx["tree"], fx["run"], fx["table"]
    slots = [Slot(f"space {n}", spaces, f"{n}.yaml", _space_commands(n), 20, agree=True)
             for n in ("strip_mlp", "mlp_mixer", "token_mixers", "mixnas_bench")]
    slots.append(Slot("space extends target", spaces, "strip_mlp.yaml", _space_commands("child"), 30, agree=True))
    slots += [
        Slot("study table6", tree, "studies/strip_mlp_table6_strip_width.yaml",
             _study("studies/strip_mlp_table6_strip_width.yaml"), 30),
        Slot("study token mixers", tree, "studies/token_mixer_comparison.yaml",
             _study("studies/token_mixer_comparison.yaml"), 30),
        Slot("study paper", tree, "studies/paper/strip_mlp_table9_branches_cifar100.yaml",
             _study("studies/paper/strip_mlp_table9_branches_cifar100.yaml"), 20),
        Slot("study recipe (extends target)", tree, "studies/paper/_recipe_cifar100.yaml",
             _study("studies/paper/strip_mlp_table9_branches_cifar100.yaml"), 20),
        Slot("study base ArchConfig", tree, "examples/strip_mlp_1m_fmnist.yaml",
             _study("studies/strip_mlp_table6_strip_width.yaml"), 25),
    ]
    slots += [Slot(f"ArchConfig {n}", tree, f"examples/{n}", lambda f, n=n: [["inspect", str(f / "examples" / n)]], 30)
              for n in ("mixer_1m_fmnist.yaml", "strip_mlp_1m_fmnist.yaml")]
    trial = _front_trial(run)
    slots += [
        Slot("ArchConfig written by a search", run, f"run/pareto/trial_{int(trial):05d}.yaml",
             lambda f: [["inspect", str(f / "run" / "pareto" / f"trial_{int(trial):05d}.yaml")]], 25),
        Slot("pareto.yaml", run, "run/pareto.yaml",
             lambda f: [["inspect", str(f / "run" / "pareto.yaml")], ["inspect", f"{f / 'run' / 'pareto.yaml'}#{trial}"]],
             25),
        Slot("run search.yaml", run, "run/search.yaml", _run_commands, 12),
        Slot("run study.db", run, "run/study.db", _run_commands, 20, mutate=mutate_db, fixed=BINARY),
        Slot("run trials.csv", run, "run/trials.csv", _run_commands, 2, fixed=UNREAD),
    ]
    card = lambda f: [["bench", "card", str(f), "--out", str(f / "CARD.md")]]  # noqa: E731
    slots += [
        Slot("table build.yaml", table, "build.yaml", card, 15),
        Slot("table space.yaml", table, "space.yaml", card, 8, fixed=SOME),
        Slot("table records", table, "table.jsonl.gz", card, 20, mutate=mutate_table, fixed=BINARY),
        Slot("table plan.csv", table, "plan.csv", card, 2, fixed=UNREAD),
    ]
    return slots


SLOT_NAMES = ["space strip_mlp", "space mlp_mixer", "space token_mixers", "space mixnas_bench", "space extends target",
              "study table6", "study token mixers", "study paper", "study recipe (extends target)",
              "study base ArchConfig", "ArchConfig mixer_1m_fmnist.yaml", "ArchConfig strip_mlp_1m_fmnist.yaml",
              "ArchConfig written by a search", "pareto.yaml", "run search.yaml", "run study.db", "run trials.csv",
              "table build.yaml", "table space.yaml", "table records", "table plan.csv"]


@pytest.mark.parametrize("name", SLOT_NAMES)
def test_fuzzed_file_gives_exit_0_or_one_line_naming_it(name, fixtures, tmp_path, capsys):
    slot = next(s for s in _slots(fixtures) if s.name == name)
    fuzz_slot(slot, tmp_path, capsys)


def test_every_slot_is_fuzzed(fixtures):
    assert [s.name for s in _slots(fixtures)] == SLOT_NAMES


# -- the YAML reader's bounds, one by one ------------------------------------------------------------------------


@pytest.mark.parametrize("data, line, fragment", [
    (b"a: 1\nb: [1, \xff]\n", 2, "not UTF-8 text (byte 0xff at offset 12)"),
    (b"a: 1\nb: \x00\n", 2, "the character U+0000 is not allowed"),
    (b"a: 1\nb: 1.0e+400\n", 2, "1.0e+400 is not a finite number"),
    (b"a: 1\nb: .nan\n", 2, ".nan is not a finite number"),
    (b"a: 1\nb: " + b"9" * 5000 + b"\n", 2, "out of range; allowed: integers from -2**63 to 2**63 - 1"),
    (b"a: 1\nb: 9223372036854775808\n", 2, "out of range"),
    (f"a: 1\nb: {bomb()}\n".encode(), 2, "more than 200,000 values"),
    (b"a: 1\nb: &c [1, *c]\n", 2, "an alias refers to a node that contains it"),
    (b"a: 1\nb: " + nested(100, "list").encode() + b"\n", 2, "nested more than 64 levels deep"),
    (b"a: &x [1]\n" + b"".join(f"x{i}: &x{i} [*{'x' if i == 0 else f'x{i - 1}'}]\n".encode() for i in range(70)),
     None, "nests more than 64 levels deep"),
    (b"a: 1\nb: !!binary aGVsbG8=\n", 2, "tag not allowed (!!binary)"),
    (b"a: 1\nb: !!python/name:os.system\n", 2, "tag not allowed"),
    (b"a: 1\nb: {<<: 1}\n", 2, "invalid YAML: expected a mapping or list of mappings for merging"),
    (b"a: 1\na: 2\n", 2, "a: duplicate key (first at line 1)"),
])
def test_yaml_reader_refuses_at_the_line(tmp_path, data, line, fragment):
    from mixnas.errors import MixnasError
    from mixnas.yamlio import load_located

    f = tmp_path / "x.yaml"
    f.write_bytes(data)
    with pytest.raises(MixnasError) as info:
        load_located(f)
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    if line is not None:
        assert message.startswith(f"{f}:{line}: "), message


def test_yaml_reader_refuses_what_is_not_a_small_regular_file(tmp_path):
    from mixnas.errors import MixnasError
    from mixnas.yamlio import MAX_BYTES, load_located

    (tmp_path / "d.yaml").mkdir()
    (tmp_path / "big.yaml").write_bytes(b"# " + b"x" * MAX_BYTES + b"\n")
    for name, fragment in (("d.yaml", "is a directory"), ("none.yaml", "no such file"), ("big.yaml", "too large")):
        with pytest.raises(MixnasError, match=fragment) as info:
            load_located(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: ")


def test_yaml_reader_keeps_plain_data(tmp_path):
    from mixnas.yamlio import load_located

    f = tmp_path / "x.yaml"
    f.write_bytes(b"\xef\xbb\xbfa: 2024-01-01\nb: &k [1, 2]\nc: *k\nd: -9223372036854775808\ne: 1.5e+300\n")
    assert load_located(f) == {"a": "2024-01-01", "b": [1, 2], "c": [1, 2], "d": -2**63, "e": 1.5e300}


# -- what the fuzz found, pinned ----------------------------------------------------------------------------------


def _edited_run(fixtures: dict[str, Path], tmp_path: Path, sql: str) -> Path:
    """A copy of the tiny run with one SQL statement applied to its study."""
    run = tmp_path / "run"
    shutil.copytree(fixtures["run"] / "run", run)
    con = sqlite3.connect(run / "study.db")
    con.execute(sql)
    con.commit()
    con.close()
    return run


def test_dashboard_of_a_run_whose_trials_all_tie(fixtures, tmp_path, capsys):
    """fANOVA refuses trials of one value ("zero total variance"): the importance section is left out, the
    report is written (found by the fuzz: an SQL edit setting every value alike)."""
    run = _edited_run(fixtures, tmp_path, "UPDATE trial_values SET value = 50")
    assert main(["dashboard", str(run), "-o", str(tmp_path / "r.html"), "--bootstrap", "10"]) == 0, \
        capsys.readouterr().err


def test_damaged_trial_attribute_is_named(fixtures, tmp_path, capsys):
    run = _edited_run(fixtures, tmp_path, "UPDATE trial_user_attributes SET value_json = '[1, 2]' WHERE key = 'arch'")
    for argv in (["dashboard", str(run), "-o", str(tmp_path / "r.html")],
                 ["export", str(run), "--trial", "0", "--onnx", str(tmp_path / "x.onnx")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{run / 'study.db'}: trial 0: user attribute 'arch': expected dict" in err


def test_study_recipe_mistake_is_located_in_the_recipe(fixtures, tmp_path, capsys):
    """A paper study extends a proxy study and a recipe file: a bad recipe value is reported at the recipe's
    line, not at the factor whose level first failed."""
    tree = tmp_path / "tree"
    shutil.copytree(fixtures["tree"], tree)
    recipe = tree / "studies" / "paper" / "_recipe_cifar100.yaml"
    text = recipe.read_text()
    assert "  cutmix_alpha: 1.0" in text
    recipe.write_text(text.replace("  cutmix_alpha: 1.0", "  cutmix_alpha: [1, 2]"))
    line = 1 + recipe.read_text().splitlines().index("  cutmix_alpha: [1, 2]")
    assert main(["study", "check", str(tree / "studies" / "paper" / "strip_mlp_table9_branches_cifar100.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}:{line}: train.cutmix_alpha: cutmix_alpha must be a non-negative number" in err, err
