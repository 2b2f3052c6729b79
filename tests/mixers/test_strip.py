"""Strip-MLP: the ``strip`` token mixer, the ``grn`` channel mixer and the ``strip_mlp_*`` named models.

Small widths on 32x32 inputs (grids 8, 4, ...) keep everything fast; the 224 golden counts are taken on the
meta device. The equivalence with the official ``StripMLPNet`` (same outputs from the same weights) was
checked outside the repository; here the strip pass is checked against a direct reference of its formula.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch.nn import functional as F

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.errors import ArchError
from mixnas.mixers._conv import DepthwiseConv2d
from mixnas.mixers.grn import GlobalResponseNorm
from mixnas.mixers.strip import StripProjection
from mixnas.network import build_model
from mixnas.registry import MixerContext, get_mixer, get_named_model

GOLDEN_224 = {"strip_mlp_t_star": 18_243_920, "strip_mlp_t": 24_903_920, "strip_mlp_s": 42_568_600,
              "strip_mlp_b": 57_216_480}  # the official StripMLPNet's exact counts


def small_arch(dims=(16, 32), token=None, channel=None, image_size=32) -> ArchConfig:
    """A Strip-MLP-style pyramid: patch 4 (8x8 grid), one block per stage, same mixer params everywhere."""
    stages = tuple(StageSpec(depth=1, dim=d, token_mixer=MixerSpec.of("strip", **(token or {})),
                             channel_mixer=MixerSpec.of("grn", **(channel or {})),
                             downsample="none" if i == 0 else "conv2x2", norm="none")
                   for i, d in enumerate(dims))
    return ArchConfig(stages=stages, input=InputSpec(image_size, 3, 10),
                      stem=StemSpec(patch_size=4, dim=dims[0], bias=False), head=HeadSpec(norm="batchnorm"),
                      layout="pyramid")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def images(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def token_mixer(arch: ArchConfig, stage: int = 0):
    return build_model(arch).stages[stage].blocks[0].token_mixer


def expected_token_params(c: int, side: int, k: int = 3, groups: int | None = None, branches="cgsmm+lsmm",
                          length: int = 7, dwsc=True, input_mlp=True, rel_pos=True) -> int:
    """The strip token mixer's parameter count, written out from the official modules."""
    groups = groups or (2 if c % 80 == 0 else 4)
    c_cg, c_ls = {"cgsmm+lsmm": (c // 2, c - c // 2), "cgsmm": (c, 0), "lsmm": (0, c)}[branches]
    total = c * c  # fuse
    if dwsc:
        total += 2 * c + 9 * c  # BN, depthwise 3x3
    if input_mlp:
        total += c * c + c + 2 * c  # 1x1 conv with bias, BN
    if c_cg:
        g = c_cg // groups
        total += 2 * (g * side * side * k + g * side)  # proj_h, proj_w
        total += 2 * (2 * c_cg * c_cg) + 2 * c_cg  # fuse_h, fuse_w, BN
        total += 2 * (2 * side + 1) * c_cg if rel_pos else 0
    if c_ls:
        hidden = max(1, c_ls // 2)
        total += 2 * k * length * c_ls  # k x L and L x k depthwise strips
        total += c_ls * hidden + hidden + hidden * 3 * c_ls + 3 * c_ls  # re-weighting MLP
    return total


# -- every knob changes the model -----------------------------------------------------------------------

KNOBS = [("strip_width", 5), ("patch_groups", 2), ("arrangement", "parallel"), ("branches", "cgsmm"),
         ("branches", "lsmm"), ("lsmm_length", 5), ("dwsc", False), ("input_mlp", False), ("rel_pos", False)]


@pytest.mark.parametrize("name, value", KNOBS, ids=[f"{n}={v}" for n, v in KNOBS])
def test_each_knob_changes_the_model(name, value):
    base, changed = build_model(small_arch()).eval(), build_model(small_arch(token={name: value})).eval()
    if n_params(base) != n_params(changed):
        return
    with torch.no_grad():
        assert not torch.allclose(base(images()), changed(images()), atol=1e-5), f"{name}={value!r} changed nothing"


@pytest.mark.parametrize("token", [{}, {"strip_width": 5, "patch_groups": 2}, {"branches": "cgsmm"},
                                   {"branches": "lsmm", "lsmm_length": 3}, {"dwsc": False, "input_mlp": False},
                                   {"rel_pos": False, "strip_width": 1}])
def test_parameter_count_follows_the_official_modules(token):
    arch = small_arch(dims=(16,), token=token)
    expected = expected_token_params(16, 8, k=token.get("strip_width", 3), groups=token.get("patch_groups"),
                                     branches=token.get("branches", "cgsmm+lsmm"),
                                     length=token.get("lsmm_length", 7), dwsc=token.get("dwsc", True),
                                     input_mlp=token.get("input_mlp", True), rel_pos=token.get("rel_pos", True))
    assert n_params(token_mixer(arch)) == expected


def test_cascade_and_parallel_share_parameters_but_not_outputs():
    cascade, parallel = build_model(small_arch()).eval(), build_model(small_arch(token={"arrangement": "parallel"}))
    parallel.eval()
    sc, sp = cascade.state_dict(), parallel.state_dict()
    assert {k: v.shape for k, v in sc.items()} == {k: v.shape for k, v in sp.items()}
    parallel.load_state_dict(sc)  # one set of weights drives both
    with torch.no_grad():
        a, b = cascade(images()), parallel(images())
    assert (a - b).norm() > 1e-3 * a.norm()


def test_branch_channel_accounting():
    both = token_mixer(small_arch(dims=(16,)))
    assert both.cgsmm.bn.num_features == 8 and both.lsmm.fc_h.in_channels == 8
    assert both.cgsmm.proj_h.weight.shape == (8 // 4, 8, 8, 3)  # (C'/P, W, W, k): P = 4 as 16 % 80 != 0
    only_cg = token_mixer(small_arch(dims=(16,), token={"branches": "cgsmm"}))
    assert only_cg.lsmm is None and only_cg.cgsmm.bn.num_features == 16 and only_cg.cgsmm.pos_h.shape == (17, 16)
    only_ls = token_mixer(small_arch(dims=(16,), token={"branches": "lsmm"}))
    assert only_ls.cgsmm is None and only_ls.lsmm.fc_w.in_channels == 16
    assert only_ls.lsmm.reweight_fc2.out_features == 48
    odd = small_arch(dims=(17,))  # an odd width: CGSMM gets 8 channels, LSMM the other 9
    mixer = token_mixer(odd)
    assert mixer.cgsmm.bn.num_features == 8 and mixer.lsmm.fc_h.in_channels == 9
    assert n_params(mixer) == expected_token_params(17, 8)
    with torch.no_grad():
        assert build_model(odd)(images()).shape == (2, 10)


def test_default_patch_groups_follow_the_width_modulo_80():
    for name, expected in (("strip_mlp_t", 2), ("strip_mlp_s", 4), ("strip_mlp_b", 4)):
        arch = get_named_model(name).make(image_size=32, num_classes=10)
        assert [s.token_mixer["patch_groups"] for s in arch.stages] == [expected] * 4, name
    assert small_arch(dims=(16,)).stages[0].token_mixer["patch_groups"] == 4
    assert small_arch(dims=(80, 160), image_size=32).stages[1].token_mixer["patch_groups"] == 2


# -- validity rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims, token, path, message", [
    # width 12 -> CGSMM 6 channels, fine with 3 groups; width 32 -> CGSMM 16 channels, not.
    ((12, 32), {"patch_groups": 3}, "stages[1].token_mixer.patch_groups",
     r"16 channels \(half of width 32\).*allowed: 1, 2, 4, 8, 16"),
    ((16, 32), {"strip_width": 4}, "stages[0].token_mixer.strip_width", "odd"),
    ((16, 32), {"strip_width": 11}, "stages[1].token_mixer.strip_width", "allowed: odd values up to 9"),
    ((16, 32), {"lsmm_length": 6}, "stages[0].token_mixer.lsmm_length", "odd"),
    ((16, 32), {"arrangement": "serial"}, "stages[0].token_mixer.arrangement", "allowed: cascade, parallel"),
    ((16, 32), {"branches": "lsm"}, "stages[0].token_mixer.branches", r"allowed: cgsmm\+lsmm, cgsmm, lsmm"),
], ids=["patch_groups", "strip_width_even", "strip_width_wide", "lsmm_length", "arrangement", "branches"])
def test_rules_name_the_dotted_path(dims, token, path, message):
    with pytest.raises(ArchError) as err:
        small_arch(dims=dims, token=token)
    assert err.value.path == path
    assert re.search(message, err.value.message), err.value.message


def test_strip_width_bound_is_2h_plus_1():
    small_arch(token={"strip_width": 9})  # the 4x4 grid of stage 1 takes up to 2 * 4 + 1
    get_named_model("strip_mlp_t_star").make(image_size=32, num_classes=10)  # k = 3 on the final 1x1 grid


def test_square_grid_rule():
    with pytest.raises(ArchError) as err:
        get_mixer("token", "strip").resolve({}, MixerContext(16, (4, 8)), "stages[0].token_mixer")
    assert err.value.path == "stages[0].token_mixer" and "square" in err.value.message


def test_grn_dw_kernel_rule_and_off_switch():
    with pytest.raises(ArchError) as err:
        small_arch(channel={"dw_kernel": 4})
    assert err.value.path == "stages[0].channel_mixer.dw_kernel" and "odd" in err.value.message
    with_dw, without = build_model(small_arch()), build_model(small_arch(channel={"dw_kernel": 0}))
    assert n_params(with_dw) - n_params(without) == 49 * 16 + 49 * 32
    wide = build_model(small_arch(channel={"channel_hidden_dim": 40}))
    assert wide.stages[0].blocks[0].channel_mixer.grn.gamma.shape == (40,)


# -- numerics ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lines, taps", [(8, 3), (4, 5), (2, 5), (1, 3)])
def test_strip_pass_matches_its_formula(lines, taps):
    """out[b, h, w', p, g] = bias[g, w'] + sum_{w, t} A[g, w', w, t] * x[b, h + t - k//2, w, p, g]."""
    torch.manual_seed(0)
    groups, p = 3, 2
    proj = StripProjection(groups, lines, taps)
    x = torch.randn(2, lines, lines, p, groups)
    r = taps // 2
    padded = F.pad(x, (0, 0, 0, 0, 0, 0, r, r))  # zero rows above and below
    shifted = torch.stack([padded[:, t:t + lines] for t in range(taps)], -1)  # (B, H, W, P, G, k)
    ref = torch.einsum("gvwt,bhwpgt->bhvpg", proj.weight, shifted) + proj.bias.t()[None, None, :, None, :]
    assert torch.allclose(proj(x, along_rows=True), ref, atol=1e-5)
    cols = proj(x.transpose(1, 2), along_rows=True).transpose(1, 2)
    assert torch.allclose(proj(x, along_rows=False), cols, atol=1e-6)


@pytest.mark.parametrize("grid, kernel", [((2, 2), (7, 7)), ((1, 1), (3, 7)), ((4, 4), (7, 3)), ((8, 8), (3, 3))])
def test_depthwise_conv_skipping_padding_taps_equals_the_full_kernel(grid, kernel):
    torch.manual_seed(0)
    conv = DepthwiseConv2d(5, kernel, grid)
    x = torch.randn(2, 5, *grid)
    full = F.conv2d(x, conv.weight, padding=(kernel[0] // 2, kernel[1] // 2), groups=5)
    assert torch.allclose(conv(x), full, atol=1e-5)
    (g_full,) = torch.autograd.grad(full.sum(), conv.weight)
    (g_live,) = torch.autograd.grad(conv(x).sum(), conv.weight)
    assert torch.allclose(g_live, g_full, atol=1e-5)


def test_grn_matches_convnext_v2_and_survives_a_dead_channel():
    torch.manual_seed(0)
    grn = GlobalResponseNorm(6)
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    x = torch.randn(2, 16, 6)
    x[:, :, 2] = 0.0  # a dead unit: zero on every token
    x.requires_grad_(True)
    norm = torch.norm(x.detach(), p=2, dim=1, keepdim=True)
    ref = grn.gamma * (x * (norm / (norm.mean(dim=-1, keepdim=True) + 1e-6))) + grn.beta + x
    out = grn(x)
    assert torch.allclose(out, ref, atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(grn.gamma.grad).all()


def test_grn_training_backward_matches_autograd_of_the_formula():
    """The hand-written backward used while training: gradcheck in float64, dead channel included, and the
    same gradients as autograd through the official expression."""
    torch.manual_seed(0)
    grn = GlobalResponseNorm(6).double()
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    x = torch.randn(2, 16, 6, dtype=torch.float64)
    x[:, :, 2] = 0.0
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: grn(t), (x,))
    weights = torch.randn(2, 16, 6, dtype=torch.float64)
    ours = torch.autograd.grad((grn(x) * weights).sum(), (x, grn.gamma, grn.beta))
    live = x[:, :, [0, 1, 3, 4, 5]]
    norm = torch.norm(live, p=2, dim=1, keepdim=True)
    n = torch.zeros(2, 1, 6, dtype=torch.float64)
    n[:, :, [0, 1, 3, 4, 5]] = norm / (norm.sum(dim=-1, keepdim=True) / 6 + 1e-6)
    ref = grn.gamma * (x * n) + grn.beta + x
    theirs = torch.autograd.grad((ref * weights).sum(), (x, grn.gamma, grn.beta))
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-10)


def test_bf16_autocast_runs_depthwise_conv_and_grn_in_fp32():
    torch.manual_seed(0)
    conv, grn = DepthwiseConv2d(4, 7, (4, 4)), GlobalResponseNorm(4)
    with torch.no_grad():
        grn.gamma.normal_()
    img = torch.randn(2, 4, 4, 4).bfloat16()
    tokens = torch.randn(2, 16, 4).bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, normed = conv(img), grn(tokens)
    assert out.dtype == torch.bfloat16  # what autocast gives, computed in fp32 and rounded once
    assert torch.equal(out, F.conv2d(img.float(), conv.weight, padding=3, groups=4).bfloat16())
    assert normed.dtype == torch.float32
    assert torch.allclose(normed, grn(tokens.float()), atol=1e-6)
    normed.sum().backward()
    assert tokens.grad.dtype == torch.bfloat16


# -- named models -----------------------------------------------------------------------------------------


def test_strip_mlp_t_star_trains_at_32x32():
    arch = get_named_model("strip_mlp_t_star").make(image_size=32, num_classes=10)
    assert [s.dim for s in arch.stages] == [80, 160, 320, 640] and arch.depth == 12
    net = build_model(arch).train()
    out = net(images(4))
    assert out.shape == (4, 10)
    F.cross_entropy(out, torch.arange(4)).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", sorted(GOLDEN_224))
def test_golden_parameter_counts_at_224(name):
    model = get_named_model(name)
    with torch.device("meta"):
        net = build_model(model.make())
    assert n_params(net) == GOLDEN_224[name] == model.reported.params
