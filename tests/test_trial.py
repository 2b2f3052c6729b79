"""The trial body (mixnas.trial): a worker loads the plugins a trial ships before it builds the candidate."""

from __future__ import annotations

import sys

import pytest
from plugin_helpers import write_mixer

from mixnas import plugins
from mixnas.config import ArchConfig
from mixnas.errors import ArchError
from mixnas.registry import _FAMILIES
from mixnas.trial import run_candidate

pytestmark = pytest.mark.usefixtures("one_thread")


def plugin_arch() -> dict:
    return {"layout": "isotropic", "input": {"image_size": 16, "in_channels": 1, "num_classes": 10},
            "stem": {"patch_size": 4, "dim": 8},
            "stages": [{"depth": 1, "dim": 8, "token_mixer": {"name": "plug_trial", "scale": 0.5},
                        "channel_mixer": {"name": "mlp", "channel_hidden_dim": 16}}]}


def test_a_worker_without_the_plugin_file_trains_from_the_shipped_source(tmp_path, forget):
    path = write_mixer(tmp_path, name="plug_trial", cls="TrialMixer")
    loaded = plugins.load_plugin(str(path))
    shipped = [r for r in plugins.shipped() if r["sha256"] == loaded.sha256]
    # a fresh worker on another node: the mixer unknown, the module not imported, the file not there
    _FAMILIES["token"].pop("plug_trial")
    sys.modules.pop(plugins._LOADED.pop(str(path.resolve())).module)
    path.unlink()
    with pytest.raises(ArchError, match="unknown token mixer 'plug_trial'.*a mixer of your own: load its file"):
        ArchConfig.from_dict(plugin_arch())
    config = {"arch": plugin_arch(), "train": {"epochs": 1, "batch_size": 64, "fraction": 0.1}, "dataset": "digits",
              "data_dir": None, "digest": "plugtrial", "number": 0, "threads": 1, "plugins": shipped}
    rows = []
    outcome = run_candidate(config, lambda row: rows.append(row) or True)
    assert outcome.status == "completed", outcome.reason
    assert len(rows) == 1 and outcome.info["plugin_sha256"] == loaded.sha256
    worker = [p for p in plugins.loaded_plugins() if p.sha256 == loaded.sha256]
    assert worker and worker[0].file != str(path.resolve())  # imported from the shipped text
