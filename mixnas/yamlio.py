"""Safe YAML loading that remembers where every key came from, for files that are untrusted input.

``load_located(path)`` returns plain ``dict`` / ``list`` subclasses (:class:`LocDict`, :class:`LocList`)
whose ``loc(key)`` gives the ``(file, line)`` of each key or item, so errors can point at the line. It
uses PyYAML's ``SafeLoader`` (no Python tags, no code execution), rejects duplicate keys (PyYAML would
silently keep the last one) and turns every problem into a one-line :class:`LocatedError` naming the file
and the line. Every file mixnas reads is untrusted, so the reader also bounds what the text may cost:

* the file must be a regular file of at most :data:`MAX_BYTES`, in UTF-8 (a byte-order mark is dropped);
* nesting is at most :data:`MAX_DEPTH` levels, counted through aliases, and the document expands to at most
  :data:`MAX_NODES` nodes with every alias followed (a "billion laughs" document is refused before it is
  built, as is an alias that refers to a node containing it);
* numbers are finite floats and integers within 64 bits (``1.0e+400``, ``.nan``, a 5,000-digit integer
  are refused at their line);
* only plain data: text, numbers, booleans, null, lists and mappings. A timestamp stays the text it was
  written as; binary, set, ordered-map and Python tags are refused.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from mixnas.errors import MixnasError

Loc = tuple[str, int]

MAX_BYTES = 1 << 20  # mixnas writes YAML files of a few kB; PyYAML reads about 1 MB/s
MAX_DEPTH = 64  # a space nests about 8 levels deep
MAX_NODES = 200_000  # with every alias expanded
INT_LIMIT = 2**63 - 1
_PLAIN = "text, numbers, booleans, null, lists and mappings"


class LocatedError(MixnasError):
    """An error at ``file:line`` and a dotted YAML path: ``file:line: path: message``."""

    def __init__(self, loc: Loc | None, path: str, message: str):
        self.loc, self.path, self.message = loc, path, message
        where = (f"{loc[0]}:{loc[1]}" if loc[1] else loc[0]) if loc else "<space>"
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class LocDict(dict):
    """A dict that knows the (file, line) of each of its keys and of itself."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.locs: dict[Any, Loc] = {}
        self.start: Loc | None = None
        self.extends: tuple[str, ...] = ()  # the files a top-level mapping was merged over (load_extended)

    def missing(self, key: str) -> str:
        """``missing`` for a top-level key, naming the files it was looked for in when the file extends others."""
        return f"missing (nor set in {', '.join(self.extends)}, which it extends)" if self.extends else "missing"

    def loc(self, key: Any) -> Loc | None:
        return self.locs.get(key, self.start)


class LocList(list):
    """A list that knows the (file, line) of each item and of itself."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.locs: list[Loc] = []
        self.start: Loc | None = None

    def loc(self, index: int) -> Loc | None:
        return self.locs[index] if 0 <= index < len(self.locs) else self.start


def plain(obj: Any) -> Any:
    """``obj`` with every :class:`LocDict` / :class:`LocList` made a plain ``dict`` / ``list`` (for
    ``yaml.safe_dump``, which refuses subclasses)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


def _make_loader(filename: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:  # nesting is bounded while composing
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise LocatedError(mark(self.peek_event()), "", f"nested more than {MAX_DEPTH} levels deep; "
                                                                    f"a mixnas file nests at most {MAX_DEPTH}")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def mark(node: Any) -> Loc:
        return (filename, node.start_mark.line + 1)

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LocDict:
        loader.flatten_mapping(node)
        out = LocDict()
        out.start = mark(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise LocatedError(mark(key_node), "", "a mapping key must be a scalar") from None
            if key in out:
                raise LocatedError(mark(key_node), str(key), f"duplicate key (first at line {out.locs[key][1]})")
            out[key] = loader.construct_object(value_node, deep=True)
            out.locs[key] = mark(key_node)
        return out

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LocList:
        out = LocList(loader.construct_object(child, deep=True) for child in node.value)
        out.locs = [mark(child) for child in node.value]
        out.start = mark(node)
        return out

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        try:
            value = yaml.SafeLoader.construct_yaml_int(loader, node)
        except ValueError:  # past Python's limit on the digits of an integer
            value = None
        if value is None or not -INT_LIMIT - 1 <= value <= INT_LIMIT:
            raise LocatedError(mark(node), "", f"the integer {_short(node.value)} is out of range; allowed: "
                                               "integers from -2**63 to 2**63 - 1")
        return value

    def construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
        value = yaml.SafeLoader.construct_yaml_float(loader, node)
        if value != value or value in (float("inf"), float("-inf")):
            raise LocatedError(mark(node), "", f"{_short(node.value)} is not a finite number; allowed: finite "
                                               "numbers (about ±1.8e308 at most)")
        return value

    def construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
        return str(node.value)  # a date is kept as the text it was written as

    def refuse(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise LocatedError(mark(node), "", f"tag not allowed ({tag}): only plain YAML data ({_PLAIN})")

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)
    for tag in ("binary", "set", "omap", "pairs"):
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", refuse)
    return Loader


def _short(text: Any) -> str:
    text = str(text)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _check_graph(root: yaml.Node, filename: str) -> None:
    """Bound the document as it will be built, every alias followed: at most :data:`MAX_NODES` nodes and
    :data:`MAX_DEPTH` levels, and no alias that refers to a node containing it. Iterative, linear in the
    distinct nodes (an alias is the node it names, visited once)."""

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    active: set[int] = {id(root)}
    stack = [(root, iter(children(root)))]
    while stack:
        node, rest = stack[-1]
        child = next(rest, None)
        if child is None:
            stack.pop()
            active.discard(id(node))
            kids = children(node)
            size[id(node)] = 1 + sum(size[id(c)] for c in kids)
            depth[id(node)] = 1 + max((depth[id(c)] for c in kids), default=0)
            loc = (filename, node.start_mark.line + 1)
            if size[id(node)] > MAX_NODES:
                raise LocatedError(loc, "", f"with its aliases expanded the document has more than {MAX_NODES:,} "
                                            f"values; a mixnas file holds at most {MAX_NODES:,}")
            if depth[id(node)] > MAX_DEPTH:
                raise LocatedError(loc, "", f"with its aliases expanded the document nests more than {MAX_DEPTH} "
                                            f"levels deep; a mixnas file nests at most {MAX_DEPTH}")
            continue
        if id(child) in active:
            raise LocatedError((filename, child.start_mark.line + 1), "",
                               "an alias refers to a node that contains it (a cycle); aliases must not nest "
                               "into themselves")
        if id(child) not in size:
            active.add(id(child))
            stack.append((child, iter(children(child))))


def loads_located(text: str, filename: str) -> Any:
    """Parse YAML text safely; every YAML problem becomes a :class:`LocatedError` at its line."""
    loader = None
    try:
        loader = _make_loader(filename)(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, filename)
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as err:
        m = err.problem_mark or err.context_mark
        line = m.line + 1 if m else 0
        problem = " ".join(str(err.problem or err.context or "").split())
        if "could not determine a constructor" in problem:
            tag = problem.rsplit(" ", 1)[-1].strip("'!").replace("tag:yaml.org,2002:", "!!")
            raise LocatedError((filename, line), "", f"tag not allowed ({_short(tag)}): only plain YAML data "
                                                      f"({_PLAIN}), never Python objects") from None
        raise LocatedError((filename, line), "", f"invalid YAML: {problem}") from None
    except yaml.MarkedYAMLError as err:
        m = err.problem_mark or err.context_mark
        line = m.line + 1 if m else 0
        problem = " ".join(str(err.problem or err.context or "syntax error").split())
        raise LocatedError((filename, line), "", f"invalid YAML: {problem} (check the indentation)") from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        char = err.character if isinstance(err.character, int) else ord(str(err.character)[:1] or "?")
        raise LocatedError((filename, line), "", f"the character U+{char:04X} is not allowed in YAML text "
                                                 "(control characters other than tab and newline)") from None
    except yaml.YAMLError as err:
        raise LocatedError((filename, 0), "", "invalid YAML: " + " ".join(str(err).split())) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: str | Path, what: str = "YAML", max_bytes: int = MAX_BYTES) -> str:
    """The text of an untrusted file: it must exist, be a regular file of at most ``max_bytes`` and be UTF-8
    (a byte-order mark is dropped). Every problem is one :class:`MixnasError` line naming the file."""
    return decode(read_bytes(path, what, max_bytes), str(path))


def read_bytes(path: str | Path, what: str = "YAML", max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of an untrusted file (see :func:`read_text`)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MixnasError(f"{path}: no such file (expected a file: {what})") from None
    except OSError as err:
        raise MixnasError(f"{path}: cannot read it: {err.strerror or type(err).__name__}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MixnasError(f"{path}: is a directory; expected a file ({what})")
    if not stat.S_ISREG(st.st_mode):
        raise MixnasError(f"{path}: not a regular file; expected a file ({what})")
    if st.st_size > max_bytes:
        raise MixnasError(f"{path}: {st.st_size / 1e6:.1f} MB is too large ({what}); allowed: at most "
                          f"{max_bytes / 1e6:.1f} MB")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise MixnasError(f"{path}: cannot read it: {err.strerror or type(err).__name__}") from None
    if len(data) > max_bytes:
        raise MixnasError(f"{path}: too large ({what}); allowed: at most {max_bytes / 1e6:.1f} MB")
    return data


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text of ``data`` (without a byte-order mark); a byte that is not UTF-8 is reported at its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise LocatedError((filename, line), "", f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                                                 f"{err.start}); allowed: UTF-8 text") from None
    return text[1:] if text.startswith("\ufeff") else text


def is_file(path: str | Path) -> bool:
    """``Path.is_file`` for a path that came from a file: False (not an exception) for any name the OS refuses."""
    return _test(path, Path.is_file)


def is_dir(path: str | Path) -> bool:
    return _test(path, Path.is_dir)


def exists(path: str | Path) -> bool:
    return _test(path, Path.exists)


def _test(path: str | Path, test: Any) -> bool:
    try:
        return bool(test(Path(path)))
    except (OSError, ValueError):
        return False


def load_located(path: str | Path, what: str = "YAML") -> Any:
    """Read and parse an untrusted YAML file (see the module docstring for what is refused)."""
    return loads_located(read_text(path, what), str(path))


def merge(base: Any, over: Any) -> Any:
    """Deep-merge ``over`` onto ``base`` (mappings merge key by key, anything else is replaced)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = LocDict(base)
        out.locs = dict(getattr(base, "locs", {}))
        out.start = getattr(over, "start", None) or getattr(base, "start", None)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
            if isinstance(over, LocDict) and k in over.locs:
                out.locs[k] = over.locs[k]
        return out
    return over


def _describe(value: Any) -> str:
    return "nothing (null)" if value is None else "a list" if isinstance(value, list) else type(value).__name__


def load_extended(path: str | Path, what: str, keys: tuple[str, ...], rebase: tuple[str, ...] = (),
                  own: tuple[str, ...] = ("name",), seen: tuple[Path, ...] = (),
                  concat: tuple[str, ...] = ("plugins",)) -> LocDict:
    """Load a YAML mapping that may say ``extends: OTHER.yaml`` (relative to itself; or a list of files,
    merged left to right): the result is the other file (itself possibly extending a third) deep-merged with
    this one. Top-level keys named in
    ``rebase`` hold file paths relative to the file that sets them; an inherited one is rewritten relative to
    ``path`` so it keeps pointing at the same file. Keys in ``own`` (the name) are never inherited. ``keys`` are
    the file kind's top-level keys (for messages). Keys in ``concat`` (``plugins``) are lists that add up
    instead of replacing: the parents' items first, then this file's (a child's mixers come on top of the
    ones its parent's architecture uses); one string counts as a list of one, and every item keeps the
    ``(file, line)`` it was written at, so a path in it stays relative to the file that wrote it."""
    import os

    path = Path(path)
    data = load_located(path, f"a {what} YAML")
    if data is None:
        raise LocatedError((str(path), 1), "", f"the {what} file is empty")
    if not isinstance(data, dict):
        raise LocatedError((str(path), 1), "", f"a {what} file is a mapping with keys {', '.join(keys)}; "
                                                f"found {_describe(data)}")
    for key in concat:
        if isinstance(data.get(key), str):
            one = LocList([data[key]])
            one.locs, one.start = [data.loc(key)], data.loc(key)
            data[key] = one
    if "extends" not in data:
        return data
    parents = data["extends"] if isinstance(data["extends"], list) else [data["extends"]]
    base: Any = None
    sources: dict[str, Any] = {}
    for parent in parents:  # a list merges its files left to right, then this file over them
        if not isinstance(parent, str):
            raise LocatedError(data.loc("extends"), "extends", "expected a relative file path or a list of them")
        try:
            ppath = (path.parent / parent).resolve()
        except (OSError, ValueError, RuntimeError):
            raise LocatedError(data.loc("extends"), "extends", f"{_short(parent)!r} is not a usable file path; "
                                                               f"extends names {what} files") from None
        if ppath in seen or ppath == path.resolve():
            raise LocatedError(data.loc("extends"), "extends", f"circular extends through {parent}")
        if not is_file(ppath):
            why = f"{parent} is a directory, not a file" if is_dir(ppath) else f"no such file {parent}"
            raise LocatedError(data.loc("extends"), "extends", f"{why} (relative to {path.parent}); extends names "
                                                               f"{what} files")
        loaded = load_extended(ppath, what, keys, rebase, own, seen + (path.resolve(),), concat)
        sources[parent] = loaded
        for key in own:
            loaded.pop(key, None)
        for key in rebase:
            ref = loaded.get(key)
            if isinstance(ref, str) and not Path(ref).is_absolute() and exists(ppath.parent / ref):
                loaded[key] = os.path.relpath(ppath.parent / ref, path.parent)
        base = loaded if base is None else merge(base, loaded)
    child = LocDict({k: v for k, v in data.items() if k != "extends"})
    child.locs = {k: v for k, v in data.locs.items() if k != "extends"}
    child.start = data.start
    merged = merge(base, child)
    for key in concat:  # added up over the parents and this file, in that order
        lists = [src.get(key) for src in (*sources.values(), child)]
        if all(isinstance(v, list) for v in lists if v is not None) and any(v is not None for v in lists):
            total = LocList(item for v in lists if v is not None for item in v)
            total.locs = [loc for v in lists if v is not None for loc in getattr(v, "locs", [None] * len(v))]
            total.start = next((getattr(v, "start", None) for v in reversed(lists) if v is not None), None)
            merged[key] = total
    merged.extends = tuple(dict.fromkeys(f for parent in parents for f in
                                         (str(path.parent / parent),
                                          *getattr(sources.get(parent), "extends", ()))))
    return merged


def without(data: LocDict, key: str) -> LocDict:
    """A located mapping without ``key``; its other keys keep their lines (an architecture file's ``plugins:``
    is loaded, then the rest is the ArchConfig)."""
    out = LocDict({k: v for k, v in data.items() if k != key})
    out.locs = {k: v for k, v in getattr(data, "locs", {}).items() if k != key}
    out.start = getattr(data, "start", None)
    return out
