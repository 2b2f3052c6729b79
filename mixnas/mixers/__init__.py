"""Token- and channel-mixer families, one file each; importing this package registers them all."""

from mixnas.mixers import (  # noqa: F401
    asmlp,
    attention,
    gmlp,
    grn,
    hire,
    mixer,
    mlp,
    moe,
    permute,
    raft,
    resmlp,
    smlp,
    strip,
)
