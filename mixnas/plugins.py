"""User plugins: modules outside the package that register mixers, named models or datasets.

A researcher's new token mixer lives in their own file, not in a fork of ``mixnas/mixers/``. A plugin is

* a ``.py`` file path (``plugins: [my_mixer.py]`` in a space, architecture or study file, relative to that
  file; ``--plugin my_mixer.py`` on the command line, relative to the working directory), or
* an importable module name (``--plugin mylab.mixers``), or
* an installed package's entry point in the ``mixnas.plugins`` group (loaded by every command, no option):
  ``[project.entry-points."mixnas.plugins"] mylab = "mylab.mixers"``.

Importing it runs its ``@register_mixer`` / ``@register_model`` / ``register_dataset`` calls. A plugin that
fails to import, or registers something invalid, is a :class:`PluginError` (exit 2) naming its file and line.

Every loaded plugin is recorded with the sha256 of its source (:func:`mixnas.provenance.code_version`), as
mixnas's own commit is. A search ships each plugin's source with its trials (:func:`shipped`): a Ray worker
imports the same code before it builds a candidate (:func:`ensure_plugins`), from the same path where the file
is there with the same hash, else from the shipped text (a cluster node without the user's checkout).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixnas.errors import MixnasError

ENTRY_POINT_GROUP = "mixnas.plugins"
MODULE_PREFIX = "mixnas_plugin_"  # file plugins are imported under this prefix, never shadowing a real module


class PluginError(MixnasError):
    """A plugin that cannot be found, fails to import, or registers something invalid."""


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: how it was named, the module it became, its file and that file's sha256."""

    spec: str
    module: str
    file: str | None
    sha256: str | None
    kind: str  # "file", "module" or "entry point"

    def record(self) -> dict[str, Any]:
        """What a result records about it (:func:`mixnas.provenance.code_version`)."""
        return {"spec": self.spec, "kind": self.kind, "module": self.module, "file": self.file,
                "sha256": self.sha256}


_LOADED: dict[str, Plugin] = {}  # by resolved file (or module name for file-less modules)
_ENTRY_POINTS_DONE = False


def loaded_plugins() -> list[Plugin]:
    """Every plugin this process has loaded, in load order."""
    return list(_LOADED.values())


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _source_hash(module: Any) -> tuple[str | None, str | None]:
    """A module's file and its sha256; a package hashes every ``.py`` file under it (sorted by path)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None, None
    if Path(file).name == "__init__.py":
        h = hashlib.sha256()
        root = Path(file).parent
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
        return str(root), h.hexdigest()
    return str(Path(file).resolve()), file_sha256(file)


def is_file_spec(spec: str) -> bool:
    """A path (``.py`` or with a separator), as opposed to a dotted module name."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _module_name(path: Path, sha: str) -> str:
    stem = re.sub(r"\W", "_", path.stem) or "plugin"
    name = f"{MODULE_PREFIX}{stem}"
    held = sys.modules.get(name)
    if held is not None and getattr(held, "__file__", None) != str(path):
        name = f"{name}_{sha[:8]}"  # two plugin files with one stem: both load, under distinct names
    return name


def _locate(err: BaseException, inside: Path | None) -> str:
    """``FILE, line N`` of the deepest frame of ``err`` in the plugin's own code (``inside``: its file or its
    package folder); the deepest frame anywhere when none is."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}, line {err.lineno}"
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if inside is not None and _within(f.filename, inside)]
    frame = (own or frames or [None])[-1]
    return f"{frame.filename}, line {frame.lineno}" if frame is not None else str(inside or "?")


def _within(filename: str, inside: Path) -> bool:
    try:
        p = Path(filename).resolve()
    except OSError:
        return False
    return p == inside or inside in p.parents


def _fail(err: BaseException, spec: str, inside: Path | None, where: str) -> PluginError:
    prefix = f"{where}: " if where else ""
    detail = str(err).strip().splitlines()
    what = f"{type(err).__name__}: {detail[0] if detail else ''}".rstrip(": ")
    loc = _locate(err, inside)
    if inside is not None and inside.is_file() and loc.startswith(f"{inside}, line"):
        return PluginError(f"{prefix}plugin {loc}: {what}")  # its own file: the path once
    return PluginError(f"{prefix}plugin {spec!r} failed at {loc}: {what}")


def _exec_file(path: Path, spec: str, where: str, sha: str) -> Any:
    name = _module_name(path, sha)
    mspec = importlib.util.spec_from_file_location(name, path)
    if mspec is None or mspec.loader is None:
        raise PluginError(f"{where + ': ' if where else ''}plugin {spec!r}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(mspec)
    sys.modules[name] = module  # before exec: dataclasses and pickling look the module up by name
    try:
        mspec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # the user's code: anything it raises is their mistake
        sys.modules.pop(name, None)
        raise _fail(err, spec, path, where) from err
    return module


def _resolve_file(spec: str, base_dir: str | Path | None, where: str) -> Path:
    raw = Path(spec).expanduser()
    tried = [raw] if raw.is_absolute() else [Path(base_dir) / raw] if base_dir is not None else []
    if not raw.is_absolute():
        tried.append(Path.cwd() / raw)
    for p in tried:
        if p.is_file():
            return p.resolve()
    prefix = f"{where}: " if where else ""
    looked = " or ".join(str(p) for p in dict.fromkeys(tried))
    raise PluginError(f"{prefix}plugin file {spec!r} not found (looked for {looked}); a plugin is a .py file "
                      "path or an importable module name")


def load_plugin(spec: str, base_dir: str | Path | None = None, where: str = "") -> Plugin:
    """Import the plugin ``spec`` (a file path, relative to ``base_dir`` then the working directory, or a
    module name) once per process; ``where`` (``FILE: plugins[0]``) prefixes its errors."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"{where + ': ' if where else ''}a plugin is a non-empty string: a .py file path or a "
                          f"module name; found {spec!r:.60}")
    spec = spec.strip()
    if is_file_spec(spec):
        path = _resolve_file(spec, base_dir, where)
        if str(path) in _LOADED:
            return _LOADED[str(path)]
        sha = file_sha256(path)
        module = _exec_file(path, spec, where, sha)
        plugin = Plugin(spec, module.__name__, str(path), sha, "file")
        _LOADED[str(path)] = plugin
        return plugin
    return _import_module(spec, where, "module")


def _import_module(spec: str, where: str, kind: str) -> Plugin:
    for p in _LOADED.values():
        if p.module == spec:
            return p
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", spec):
        raise PluginError(f"{where + ': ' if where else ''}plugin {spec!r} is neither a .py file path nor a "
                          "dotted module name")
    found = importlib.util.find_spec(spec.split(".")[0]) if spec.split(".")[0] not in sys.modules else True
    if found is None:
        raise PluginError(f"{where + ': ' if where else ''}plugin module {spec!r} is not importable (not installed, "
                          "nor on sys.path); a plugin is a .py file path or an importable module name")
    already = spec in sys.modules
    try:
        module = importlib.import_module(spec)
    except (Exception, SystemExit) as err:
        origin = getattr(importlib.util.find_spec(spec.split(".")[0]), "origin", None) if not already else None
        inside = Path(origin).parent if origin and Path(origin).name == "__init__.py" else \
            Path(origin) if origin else None
        raise _fail(err, spec, inside, where) from err
    file, sha = _source_hash(module)
    plugin = Plugin(spec, module.__name__, file, sha, kind)
    _LOADED[file or spec] = plugin
    return plugin


def load_plugins(specs: Iterable[str] | None, base_dir: str | Path | None = None, where: str = "") -> list[Plugin]:
    """Load every plugin of ``specs`` (see :func:`load_plugin`); ``where`` names the list (``FILE: plugins``)."""
    out = []
    for i, spec in enumerate(specs or ()):
        out.append(load_plugin(spec, base_dir, f"{where}[{i}]" if where else ""))
    return out


def load_entry_points() -> list[Plugin]:
    """Load the plugins installed packages declare in the ``mixnas.plugins`` entry-point group (once).

    An entry point names a module (``mylab.mixers``) or a callable in one (``mylab.mixers:register``), which is
    then called with no argument."""
    global _ENTRY_POINTS_DONE
    if _ENTRY_POINTS_DONE:
        return []
    _ENTRY_POINTS_DONE = True
    from importlib.metadata import entry_points

    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP}"
        plugin = _import_module(ep.module, where, "entry point")
        if ep.attr:
            try:
                ep.load()()
            except (Exception, SystemExit) as err:
                raise _fail(err, ep.value, Path(plugin.file) if plugin.file else None, where) from err
        out.append(plugin)
    return out


def shipped() -> list[dict[str, Any]]:
    """Every loaded plugin as plain data for a worker: its record, and the source text of a single file."""
    out = []
    for p in loaded_plugins():
        row = p.record()
        if p.kind == "file" and p.file:
            row["source"] = Path(p.file).read_text()
        out.append(row)
    return out


def ensure_plugins(records: Sequence[dict[str, Any]] | None) -> list[Plugin]:
    """Worker side: load the plugins a driver :func:`shipped`, the same code (by sha256) whatever the node has.

    A file plugin is imported from its path when the file is there with the same hash, else from its shipped
    text written under the temp folder; a module plugin is imported by name (install it on every node)."""
    out = []
    for rec in records or ():
        if rec.get("kind") != "file":
            out.append(_import_module(rec["module"] if rec.get("kind") == "module" else rec["spec"],
                                      "on this worker", str(rec.get("kind", "module"))))
            continue
        same = [p for p in _LOADED.values() if p.sha256 == rec.get("sha256")]
        if same:
            out.append(same[0])
            continue
        path = Path(rec["file"])
        if not (path.is_file() and file_sha256(path) == rec.get("sha256")):
            if "source" not in rec:
                raise PluginError(f"plugin {rec['spec']!r}: {path} is not on this worker and its source was not "
                                  "shipped")
            folder = Path(tempfile.gettempdir()) / "mixnas-plugins" / str(rec["sha256"])[:16]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / Path(rec["file"]).name
            if not path.is_file():
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(rec["source"])
                os.replace(tmp, path)
        out.append(load_plugin(str(path), where="on this worker"))
    return out


def yaml_plugins(data: Any, key: str = "plugins") -> list[Plugin]:
    """Load the plugins a YAML file's ``plugins:`` key names (a list of strings, or one string), before the rest
    of the file is validated (its mixers may come from them).

    Each item is a ``.py`` path relative to the file that wrote it (its location, ``(file, line)``, says which:
    a file that ``extends`` another keeps each parent's items relative to the parent) or a module name.
    Mistakes are located: ``FILE:LINE: plugins[i]: ...``."""
    from mixnas.yamlio import LocatedError

    if not isinstance(data, dict) or data.get(key) is None:
        return []
    raw = data[key]
    top = data.loc(key) if hasattr(data, "loc") else None
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise LocatedError(top, key, "expected a list of plugins (.py file paths relative to this file, or "
                                     f"module names), found {type(raw).__name__}")
    out: list[Plugin] = []
    for i, spec in enumerate(items):
        loc = (items.loc(i) if hasattr(items, "loc") else None) or top
        where = f"{loc[0]}:{loc[1]}: {key}[{i}]" if loc else f"{key}[{i}]"
        if not isinstance(spec, str):
            raise PluginError(f"{where}: expected a .py file path or a module name, found "
                              f"{'null' if spec is None else type(spec).__name__}")
        base = Path(loc[0]).parent if loc and loc[0] and not loc[0].startswith("<") else None
        plugin = load_plugin(spec, base, where)
        if plugin not in out:
            out.append(plugin)
    return out


def load_and_drop_plugins(data: Any) -> Any:
    """Load the plugins a parsed YAML mapping's top-level ``plugins:`` names (:func:`yaml_plugins`) and return the
    mapping without that key, so the rest of the file is validated as the document it describes (an architecture
    file mixnas writes while plugins are loaded starts with such a line). Anything else is returned as it is."""
    from mixnas.yamlio import without

    if not isinstance(data, dict) or "plugins" not in data:
        return data
    yaml_plugins(data)
    return without(data, "plugins")


def plugin_ref(plugin: Plugin) -> str:
    """How a written file names a loaded plugin so that it loads again from anywhere: the absolute path of a
    file plugin, the module name of the others."""
    return plugin.file if plugin.kind == "file" and plugin.file else plugin.module


def yaml_header() -> str:
    """The ``plugins:`` line that heads an architecture file mixnas writes while plugins are loaded (a search's
    ``pareto.yaml``, a sampled or saved architecture), so that ``mixnas train`` / ``inspect`` of the file load
    them first: each as :func:`plugin_ref` names it. Empty without plugins."""
    refs = [plugin_ref(p) for p in loaded_plugins()]
    return f"plugins: [{', '.join(_quoted(r) for r in refs)}]\n" if refs else ""


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"  # YAML single quotes: any path reads back as written


def recorded() -> list[dict[str, Any]]:
    """What a run folder records about the plugins of this process (:func:`reload_recorded` reads it back)."""
    return [p.record() for p in loaded_plugins()]


def _warn(message: str) -> None:
    print(f"mixnas: warning: {message}", file=sys.stderr, flush=True)


def reload_recorded(records: Any, where: str, warn: Any = _warn) -> list[Plugin]:
    """Reopening a run: load the plugins it recorded (:func:`recorded`) from the recorded file, before any of
    its architectures is read. A file that is gone is a :class:`PluginError` naming it; a file whose sha256
    changed loads with a warning (the run's results came from other code); ``where`` names the record."""
    if records is None:
        return []
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise PluginError(f"{where}: expected a list of plugin records (spec, kind, module, file, sha256)")
    out = []
    for i, rec in enumerate(records):
        kind, file, sha = rec.get("kind"), rec.get("file"), rec.get("sha256")
        if kind == "file":
            if not isinstance(file, str) or not Path(file).is_file():
                raise PluginError(f"{where}[{i}]: the plugin file {file} this run was made with is gone; restore "
                                  "it (or the run's architectures cannot be built)")
            plugin = load_plugin(file, where=f"{where}[{i}]")
        elif isinstance(rec.get("module"), str):
            plugin = _import_module(rec["module"], f"{where}[{i}]", str(kind or "module"))
        else:
            raise PluginError(f"{where}[{i}]: a plugin record names a file or a module")
        if sha and plugin.sha256 and plugin.sha256 != sha:
            warn(f"{where}[{i}]: plugin {plugin.file or plugin.module} changed since this run recorded it "
                 f"(sha256 {str(sha)[:12]}... then, {plugin.sha256[:12]}... now); its results came from the "
                 "recorded version")
        out.append(plugin)
    return out


def split_target(target: str) -> tuple[str | None, str]:
    """``MODULE:NAME`` -> (``MODULE``, ``NAME``); a bare ``NAME`` -> (None, ``NAME``). ``MODULE`` may be a
    file path (``my_mixer.py:MyMixer``)."""
    module, sep, name = target.rpartition(":")
    if not sep:
        return None, target
    if not module or not name:
        raise PluginError(f"{target!r}: expected MODULE:NAME (a .py file or a module name, a colon, and the "
                          "registered name or class name) or a registered NAME")
    return module, name
