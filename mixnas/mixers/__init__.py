"""Token- and channel-mixer families, one file each; importing this package registers them all."""

from mixnas.mixers import attention, gmlp, grn, mixer, mlp, moe, permute, raft, resmlp, strip  # noqa: F401
