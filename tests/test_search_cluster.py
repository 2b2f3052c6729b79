"""A search on an existing two-node Ray cluster (both nodes on this machine): trials run on both nodes."""

from __future__ import annotations

import pytest
from search_helpers import write_space

ray = pytest.importorskip("ray")


def test_search_on_two_node_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    from mixnas.ray_io import cluster_nodes, run_search
    from mixnas.search import Search, SearchSettings

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        assert len(cluster_nodes()) == 2
        space = write_space(tmp_path, "1G")
        search = Search(SearchSettings(space=str(space), out=str(tmp_path / "run"), trials=6, max_epochs=1,
                                       sampler="random", scheduler="none", concurrency=2, seed=5,
                                       address=cluster.address, resources={"cpu": 1.0, "gpu": 0.0}))
        run_search(search)
        trained = [t for t in search.trials() if t.user_attrs.get("status") == "completed"
                   and "duplicate_of" not in t.user_attrs]
        assert len(trained) >= 2
        assert len({t.user_attrs["node_id"] for t in trained}) == 2  # trials ran on both nodes
        assert ray.is_initialized()  # run_search leaves a cluster it did not start alone
    finally:
        ray.shutdown()
        cluster.shutdown()
