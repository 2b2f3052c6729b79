"""Plugins: a user's file or module that registers mixers, models or datasets (mixnas.plugins)."""

from __future__ import annotations

import sys

import pytest
from plugin_helpers import MIXER, write, write_mixer

from mixnas import plugins
from mixnas.errors import MixnasError
from mixnas.plugins import PluginError, load_plugin, load_plugins, split_target
from mixnas.provenance import code_version
from mixnas.registry import _FAMILIES, RegistrationError, get_mixer


def test_a_file_plugin_registers_its_mixer_and_is_recorded_with_its_hash(tmp_path, forget):
    path = write(tmp_path, "mean_mixer.py", MIXER.format(name="plug_mean", cls="MeanMixer"))
    plugin = load_plugin("mean_mixer.py", base_dir=tmp_path)
    assert get_mixer("token", "plug_mean").cls.__name__ == "MeanMixer"
    assert plugin.file == str(path.resolve()) and plugin.kind == "file"
    assert plugin.sha256 == plugins.file_sha256(path)
    assert load_plugin(str(path)) is plugin  # once per process, however it is named
    recorded = code_version()["plugins"]
    assert {"spec": "mean_mixer.py", "kind": "file", "module": plugin.module, "file": str(path.resolve()),
            "sha256": plugin.sha256} in recorded


def test_a_module_plugin_is_imported_by_name(tmp_path, forget, monkeypatch):
    pkg = tmp_path / "mylab"
    pkg.mkdir()
    write(pkg, "__init__.py", "from mylab import mixers  # noqa\n")
    write(pkg, "mixers.py", MIXER.format(name="plug_lab", cls="LabMixer"))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = load_plugin("mylab")
    assert get_mixer("token", "plug_lab").cls.__name__ == "LabMixer"
    assert plugin.kind == "module" and plugin.file == str(pkg) and len(plugin.sha256) == 64
    sys.modules.pop("mylab", None)
    sys.modules.pop("mylab.mixers", None)


@pytest.mark.parametrize("body, line, what", [
    ("x = 1\nraise RuntimeError('no GPU here')\n", 2, "RuntimeError: no GPU here"),
    ("def f(:\n    pass\n", 1, "SyntaxError"),
    ("import not_a_module_anywhere\n", 1, "ModuleNotFoundError"),
])
def test_a_plugin_that_fails_to_import_names_its_file_and_line(tmp_path, forget, body, line, what):
    path = write(tmp_path, "broken.py", body)
    with pytest.raises(PluginError) as err:
        load_plugins([str(path)], where="space.yaml: plugins")
    msg = str(err.value)
    assert msg.startswith(f"space.yaml: plugins[0]: plugin {path.resolve()}, line {line}: "), msg
    assert what in msg
    assert err.value.exit_code == 2


@pytest.mark.parametrize("decl, line, message", [
    ('@register_mixer("token", "bad kind", params=[])', 3, "must be a non-empty string"),
    ('@register_mixer("spatial", "x", params=[])', 3, "role 'spatial' is not one of token, channel"),
    ('@register_mixer("token", "x", params=[Param("w", list, [])])', 3, "has kind"),
    ('@register_mixer("token", "x", params=[Param("w", int, 0, min=1)])', 3, "fails its own declaration"),
    ('@register_mixer("token", "x", params=[Param("missing", int, 1)])', 3, "lacks missing"),
    ('@register_mixer("token", "attention", params=[])', 3, "registered twice"),
])
def test_a_plugin_that_registers_something_invalid_names_its_file_and_line(tmp_path, forget, decl, line, message):
    body = f"from torch import nn\nfrom mixnas.registry import Param, register_mixer\n{decl}\nclass M(nn.Module):\n" \
           "    def __init__(self, ctx):\n        super().__init__()\n"
    path = write(tmp_path, "invalid.py", body)
    with pytest.raises(PluginError) as err:
        load_plugin(str(path))
    assert f"{path.resolve()}, line {line}" in str(err.value) and message in str(err.value), str(err.value)
    assert "RegistrationError" in str(err.value)


@pytest.mark.parametrize("classes", [1, 2.5, True])
def test_a_dataset_with_an_impossible_class_count_is_refused(forget, classes):
    from mixnas.data import DATASETS, register_dataset
    from mixnas.data.base import DatasetSpec

    with pytest.raises(RegistrationError, match="num_classes must be an integer of at least 2, or None"):
        register_dataset(DatasetSpec("mine", lambda request: None, 3, 32, True, "a test's", classes))
    assert "mine" not in DATASETS
    register_dataset(DatasetSpec("mine", lambda request: None, 3, 32, True, "a test's", None))  # the folder decides


def test_registration_errors_are_user_errors_for_the_builtin_path_too(forget):
    from mixnas.registry import register_mixer

    with pytest.raises(RegistrationError) as err:
        register_mixer("channel", "", params=[])
    assert isinstance(err.value, MixnasError)


def test_missing_plugins_say_what_a_plugin_is(tmp_path):
    with pytest.raises(PluginError, match=r"plugin file 'nope\.py' not found .*a \.py file path or an importable"):
        load_plugin("nope.py", base_dir=tmp_path)
    with pytest.raises(PluginError, match=r"plugin module 'no_such_pkg_xyz' is not importable"):
        load_plugin("no_such_pkg_xyz")
    with pytest.raises(PluginError, match="neither a .py file path nor a dotted module name"):
        load_plugin("my-mixer")


def test_a_worker_without_the_file_imports_the_shipped_source(tmp_path, forget):
    path = write(tmp_path, "shipped_mixer.py", MIXER.format(name="plug_shipped", cls="ShippedMixer"))
    load_plugin(str(path))
    records = [r for r in plugins.shipped() if r["file"] == str(path.resolve())]
    assert records and records[0]["source"] == path.read_text()
    # a fresh worker: nothing loaded, and the file gone from this "node"
    _FAMILIES["token"].pop("plug_shipped")
    sys.modules.pop(plugins._LOADED.pop(str(path.resolve())).module)
    path.unlink()
    got = plugins.ensure_plugins(records)
    assert got[0].sha256 == records[0]["sha256"] and got[0].file != str(path.resolve())
    assert get_mixer("token", "plug_shipped").cls.__name__ == "ShippedMixer"
    assert plugins.ensure_plugins(records)[0] is got[0]  # loaded once


def test_entry_points_are_loaded_with_the_builtins(tmp_path, forget, monkeypatch):
    import importlib.metadata as md

    write(tmp_path, "ep_mixers.py", MIXER.format(name="plug_ep", cls="EpMixer"))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = md.EntryPoint(name="lab", value="ep_mixers", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(md, "entry_points", lambda group=None: [ep] if group == plugins.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(plugins, "_ENTRY_POINTS_DONE", False)
    assert get_mixer("token", "plug_ep").cls.__name__ == "EpMixer"
    assert [p.kind for p in plugins.loaded_plugins() if p.module == "ep_mixers"] == ["entry point"]
    sys.modules.pop("ep_mixers", None)


@pytest.mark.parametrize("target, expected", [
    ("my_mixer.py:MyMixer", ("my_mixer.py", "MyMixer")),
    ("mylab.mixers:fancy", ("mylab.mixers", "fancy")),
    ("strip", (None, "strip")),
])
def test_split_target(target, expected):
    assert split_target(target) == expected


def test_split_target_refuses_half_a_target():
    with pytest.raises(PluginError, match="expected MODULE:NAME"):
        split_target("my_mixer.py:")


def test_a_yaml_plugins_list_loads_relative_to_its_file_and_locates_mistakes(tmp_path, forget):
    from mixnas.plugins import yaml_plugins
    from mixnas.yamlio import LocatedError, load_located

    (tmp_path / "lab").mkdir()
    write_mixer(tmp_path / "lab", name="plug_yaml")
    doc = tmp_path / "lab" / "arch.yaml"
    doc.write_text("name: x\nplugins: mean_mixer.py\n")  # one string, relative to the file, not the cwd
    got = yaml_plugins(load_located(doc))
    assert [p.file for p in got] == [str((tmp_path / "lab" / "mean_mixer.py").resolve())]
    assert get_mixer("token", "plug_yaml")
    doc.write_text("plugins:\n  - mean_mixer.py\n  - gone.py\n")
    with pytest.raises(PluginError, match=rf"^{doc}:3: plugins\[1\]: plugin file 'gone.py' not found"):
        yaml_plugins(load_located(doc))
    doc.write_text("plugins: [3]\n")
    with pytest.raises(PluginError, match=rf"^{doc}:1: plugins\[0\]: expected a .py file path or a module name"):
        yaml_plugins(load_located(doc))
    doc.write_text("plugins: {a: 1}\n")
    with pytest.raises(LocatedError, match=rf"^{doc}:1: plugins: expected a list of plugins"):
        yaml_plugins(load_located(doc))


def test_a_run_reloads_its_recorded_plugins_warns_when_changed_and_fails_when_gone(tmp_path, forget):
    from mixnas.plugins import recorded, reload_recorded

    path = write_mixer(tmp_path, name="plug_rec")
    load_plugin(str(path))
    records = [r for r in recorded() if r["file"] == str(path.resolve())]
    warned: list[str] = []
    assert reload_recorded(records, "run/search.yaml: plugins", warned.append)[0].sha256 == records[0]["sha256"]
    assert warned == []
    changed = [{**records[0], "sha256": "0" * 64}]
    reload_recorded(changed, "run/search.yaml: plugins", warned.append)
    assert len(warned) == 1 and f"plugin {path.resolve()} changed since this run recorded it" in warned[0]
    path.unlink()
    with pytest.raises(PluginError, match=rf"run/search.yaml: plugins\[0\]: the plugin file {path.resolve()} this "
                                          "run was made with is gone"):
        reload_recorded(records, "run/search.yaml: plugins")


def test_an_architecture_written_with_plugins_loaded_parses_in_a_fresh_process(tmp_path, forget):
    """What a search writes atop pareto files while plugins are loaded (``plugins: [...]``) is read back by
    ArchConfig.from_yaml too, which loads them first (it once refused the key)."""
    import subprocess

    from mixnas.config import ArchConfig

    path = write(tmp_path, "fresh_mixer.py", MIXER.format(name="plug_fresh", cls="FreshMixer"))
    load_plugin(str(path))
    arch = ArchConfig.from_dict({"layout": "isotropic", "input": {"image_size": 16, "in_channels": 1, "num_classes": 3},
                                 "stem": {"patch_size": 4, "dim": 16},
                                 "stages": [{"depth": 1, "dim": 16, "token_mixer": {"name": "plug_fresh"},
                                             "channel_mixer": {"name": "mlp"}}]})
    text = plugins.yaml_header() + arch.to_yaml()
    assert text.startswith(f"plugins: ['{path.resolve()}']") or text.startswith(f"plugins: [{path.resolve()}]")
    assert ArchConfig.from_yaml(text).digest() == arch.digest()
    code = ("import sys; from mixnas.config import ArchConfig; "
            "print(ArchConfig.from_yaml(sys.stdin.read()).digest())")
    out = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == arch.digest()
