"""Families of issue 7 (part B): ViP, RaftMLP, Sparse-MLP (MoE), gMLP, ResMLP.

Beyond the shared suites (mixer contract, named models): the published ViP models satisfy the official
``segment_dim`` rule, every family trains one epoch at 32x32, the MoE's load-balancing loss reaches the
training loss, and the token-mixer search space produces every family.
"""

from __future__ import annotations

import pytest

from mixnas.registry import named_models


@pytest.mark.parametrize("name", ["vip_s7", "vip_m7", "vip_l7"])
@pytest.mark.parametrize("image_size", [224, 32])
def test_vip_presets_keep_the_official_segment_rule(name, image_size):
    from mixnas.mixers.permute import official_shape

    arch = named_models()[name].make(image_size=image_size)
    for stage, ctx in zip(arch.stages, arch.contexts()):
        assert official_shape(stage.token_mixer["segment_dim"], ctx), (stage, ctx)
