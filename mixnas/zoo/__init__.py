"""Named models: one module per paper, each entry an ArchConfig factory plus the paper's reported numbers.

Importing this package registers every named model (see :func:`mixnas.registry.named_models`).
"""

from mixnas.zoo import (  # noqa: F401
    as_mlp,
    gmlp,
    hire_mlp,
    mlp_mixer,
    raft_mlp,
    resmlp,
    smlpnet,
    sparse_mlp,
    strip_mlp,
    vip,
    vit,
)
