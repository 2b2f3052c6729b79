"""A search on an existing two-node Ray cluster (both nodes on this machine): trials run on both nodes, with
the mixnas code and with a user's plugin mixer from a file outside the package."""

from __future__ import annotations

import pytest
from search_helpers import write_space

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_nodes():
    """A local cluster of two nodes of one CPU each, connected to: two trials at once run on both nodes."""
    from ray.cluster_utils import Cluster

    from mixnas.ray_io import cluster_nodes

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        assert len(cluster_nodes()) == 2
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def cluster_search(space, out, address, trials: int):
    from mixnas.search_driver import Search, SearchSettings

    return Search(SearchSettings(space=str(space), out=str(out), trials=trials, max_epochs=1, sampler="random",
                                 scheduler="none", concurrency=2, seed=5, address=address,
                                 resources={"cpu": 1.0, "gpu": 0.0}))


def trained_trials(search) -> list:
    return [t for t in search.trials() if t.user_attrs.get("status") == "completed"
            and "duplicate_of" not in t.user_attrs]


def test_search_on_two_node_cluster(tmp_path, two_nodes):
    from mixnas.ray_io import run_search

    search = cluster_search(write_space(tmp_path, "1G"), tmp_path / "run", two_nodes.address, trials=6)
    run_search(search)
    trained = trained_trials(search)
    assert len(trained) >= 2
    assert len({t.user_attrs["node_id"] for t in trained}) == 2  # trials ran on both nodes
    assert ray.is_initialized()  # run_search leaves a cluster it did not start alone


def test_a_plugin_mixer_is_searched_on_both_nodes_counted_and_drawn(tmp_path, two_nodes, forget):
    """The user's mixer lives in a file the test writes outside the package, named by the space file: the
    workers of both nodes import it before they build a candidate, fvcore counts it on the driver, every
    record carries its sha256, and the dashboard of the run (which reloads it) draws it."""
    from plugin_helpers import unload, write_plugin_space

    from mixnas.cli import main
    from mixnas.complexity import complexity
    from mixnas.config import ArchConfig
    from mixnas.plugins import file_sha256
    from mixnas.ray_io import run_search

    space, plugin = write_plugin_space(tmp_path, "plug_cluster")
    sha = file_sha256(plugin)
    search = cluster_search(space, tmp_path / "run", two_nodes.address, trials=4)
    run_search(search)
    trained = trained_trials(search)
    assert len(trained) >= 2, [t.user_attrs.get("fail_reason") for t in search.trials()]
    assert len({t.user_attrs["node_id"] for t in trained}) == 2  # the plugin's trials trained on both nodes
    for t in trained:
        a = t.user_attrs
        arch = ArchConfig.from_dict(a["arch"])
        assert arch.stages[0].token_mixer.name == "plug_cluster"
        assert a["macs"] > 0 and a["macs"] == complexity(arch).macs  # fvcore's count, the driver's
        assert [p["sha256"] for p in a["code"]["plugins"] if p["file"] == str(plugin.resolve())] == [sha]
        assert a["plugin_sha256"] == sha  # the code the worker imported, as it saw it
    unload(plugin, "plug_cluster")  # as a later process: the dashboard reloads it from the run's record
    assert main(["dashboard", str(tmp_path / "run"), "--bootstrap", "10"]) == 0
    assert "plug_cluster" in (tmp_path / "run" / "report.html").read_text()
