"""Named models: one module per paper, each entry an ArchConfig factory plus the paper's reported numbers.

Importing this package registers every named model (see :func:`mixnas.registry.named_models`).
"""

from mixnas.zoo import as_mlp, hire_mlp, mlp_mixer, smlpnet, strip_mlp, vit  # noqa: F401
