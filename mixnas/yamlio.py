"""Safe YAML loading that remembers where every key came from.

``load_located(path)`` returns plain ``dict`` / ``list`` subclasses (:class:`LocDict`, :class:`LocList`)
whose ``loc(key)`` gives the ``(file, line)`` of each key or item, so errors can point at the line. It
uses PyYAML's ``SafeLoader`` (no Python tags, no code execution), rejects duplicate keys (PyYAML would
silently keep the last one) and turns every YAML error into a one-line :class:`LocatedError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mixnas.errors import MixnasError

Loc = tuple[str, int]


class LocatedError(MixnasError):
    """An error at ``file:line`` and a dotted YAML path: ``file:line: path: message``."""

    def __init__(self, loc: Loc | None, path: str, message: str):
        self.loc, self.path, self.message = loc, path, message
        where = f"{loc[0]}:{loc[1]}" if loc else "<space>"
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class LocDict(dict):
    """A dict that knows the (file, line) of each of its keys and of itself."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.locs: dict[Any, Loc] = {}
        self.start: Loc | None = None

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


def _make_loader(filename: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def mark(node: yaml.Node) -> Loc:
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

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def loads_located(text: str, filename: str) -> Any:
    """Parse YAML text safely; every YAML problem becomes a :class:`LocatedError` at its line."""
    try:
        return yaml.load(text, Loader=_make_loader(filename))  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as err:
        line = (err.problem_mark or err.context_mark).line + 1
        tag = f" ({err.problem.strip()})" if err.problem else ""
        raise LocatedError((filename, line), "", f"tag not allowed{tag}: only plain YAML data is accepted, "
                                                  "never Python objects") from None
    except yaml.MarkedYAMLError as err:
        m = err.problem_mark or err.context_mark
        line = m.line + 1 if m else 0
        problem = " ".join(str(err.problem or err.context or "syntax error").split())
        raise LocatedError((filename, line), "", f"invalid YAML: {problem} (check the indentation)") from None
    except yaml.YAMLError as err:
        raise LocatedError((filename, 0), "", f"invalid YAML: {err}") from None


def load_located(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MixnasError(f"{path}: no such file")
    return loads_located(path.read_text(), str(path))


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
                  own: tuple[str, ...] = ("name",), seen: tuple[Path, ...] = ()) -> LocDict:
    """Load a YAML mapping that may say ``extends: OTHER.yaml`` (relative to itself; or a list of files,
    merged left to right): the result is the other file (itself possibly extending a third) deep-merged with
    this one. Top-level keys named in
    ``rebase`` hold file paths relative to the file that sets them; an inherited one is rewritten relative to
    ``path`` so it keeps pointing at the same file. Keys in ``own`` (the name) are never inherited. ``keys`` are
    the file kind's top-level keys (for messages)."""
    import os

    path = Path(path)
    data = load_located(path)
    if data is None:
        raise LocatedError((str(path), 1), "", f"the {what} file is empty")
    if not isinstance(data, dict):
        raise LocatedError((str(path), 1), "", f"a {what} file is a mapping with keys {', '.join(keys)}; "
                                                f"found {_describe(data)}")
    if "extends" not in data:
        return data
    parents = data["extends"] if isinstance(data["extends"], list) else [data["extends"]]
    base: Any = None
    for parent in parents:  # a list merges its files left to right, then this file over them
        if not isinstance(parent, str):
            raise LocatedError(data.loc("extends"), "extends", "expected a relative file path or a list of them")
        ppath = (path.parent / parent).resolve()
        if ppath in seen or ppath == path.resolve():
            raise LocatedError(data.loc("extends"), "extends", f"circular extends through {parent}")
        if not ppath.is_file():
            raise LocatedError(data.loc("extends"), "extends", f"no such file {parent} (relative to {path.parent})")
        loaded = load_extended(ppath, what, keys, rebase, own, seen + (path.resolve(),))
        for key in own:
            loaded.pop(key, None)
        for key in rebase:
            ref = loaded.get(key)
            if isinstance(ref, str) and not Path(ref).is_absolute() and (ppath.parent / ref).exists():
                loaded[key] = os.path.relpath(ppath.parent / ref, path.parent)
        base = loaded if base is None else merge(base, loaded)
    child = LocDict({k: v for k, v in data.items() if k != "extends"})
    child.locs = {k: v for k, v in data.locs.items() if k != "extends"}
    child.start = data.start
    return merge(base, child)
