"""Token- and channel-mixer families, one file each; importing this package registers them all."""

from mixnas.mixers import asmlp, attention, grn, hire, mixer, mlp, smlp, strip  # noqa: F401
