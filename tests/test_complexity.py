"""Parameter / MAC counting: handles, the unhandled-operator guard, the per-stage rows and the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _archs import tiny_mixer, tiny_pyramid, tiny_vit
from torch import nn

import mixnas.complexity as cx
from mixnas.network import build_model
from mixnas.registry import get_named_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never touch the user's cache; start every test with an empty in-memory cache."""
    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path / "cache"))
    cx.clear_memory_cache()
    yield
    cx.clear_memory_cache()




# -- handles ------------------------------------------------------------------------------------------------


class SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


class ExplicitAttention(nn.Module):
    def forward(self, q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v


def test_sdpa_handle_equals_the_analytic_count():
    b, h, nq, nk, d, dv = 2, 3, 5, 7, 8, 4
    q, k, v = torch.randn(b, h, nq, d), torch.randn(b, h, nk, d), torch.randn(b, h, nk, dv)
    total, _ = cx.count_macs(SDPA(), (q, k, v))
    assert total == b * h * nq * nk * d + b * h * nq * nk * dv
    assert total == cx.count_macs(ExplicitAttention(), (q, k, v))[0]


def test_sdpa_with_grouped_key_value_heads_counts_every_query_head():
    q, k, v = torch.randn(1, 4, 6, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)

    class GQA(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    assert cx.count_macs(GQA(), (q, k, v))[0] == 4 * 6 * 6 * (8 + 8)


def test_matmul_counts_broadcast_batch_dimensions():
    class Left(nn.Module):  # the MLP-Mixer token MLP: (D, N) @ (B, N, C)
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 5))

        def forward(self, x):
            return torch.matmul(self.w, x)

    class Vector(nn.Module):
        def forward(self, x):
            return torch.matmul(x, torch.ones(x.shape[-1]))

    assert cx.count_macs(Left(), (torch.randn(3, 5, 7),))[0] == 3 * 6 * 5 * 7
    assert cx.count_macs(Vector(), (torch.randn(3, 5, 7),))[0] == 3 * 5 * 7


@pytest.mark.parametrize("kernel", [3, (3, 3), [3, 3]])
def test_avg_pool_counts_one_add_per_window_element_however_the_kernel_is_spelled(kernel):
    """An int kernel traces to a list of constants whose toIValue() is None (a PoolFormer mixer's ``F.avg_pool2d(x,
    3, 1, 1)`` once failed the count with a TypeError)."""
    class Pool(nn.Module):
        def forward(self, x):
            return F.avg_pool2d(x, kernel, 1, 1, count_include_pad=False)

    assert cx.count_macs(Pool(), (torch.randn(1, 4, 8, 8),))[0] == 4 * 8 * 8 * 9


def test_named_vits_reproduce_published_macs():
    """fvcore alone gives 16.87 G for ViT-B/16: the SDPA handle adds attention's two products."""
    for name, params, macs in (("vit_b16_224", 86_567_656, 17_582_740_224),
                               ("vit_s16_224", 22_050_664, 4_608_338_304)):
        c = cx.complexity(get_named_model(name).make())
        assert (c.params, c.macs) == (params, macs), name
    vit = cx.complexity(get_named_model("vit_b16_224").make())
    assert round(vit.macs / 1e9, 2) == 17.58
    assert round(cx.complexity(get_named_model("vit_s16_224").make()).macs / 1e9, 2) == 4.61


# -- the allowlist and the unhandled-operator guard ---------------------------------------------------------


def test_zero_cost_ops_document_everything_fvcore_ignores_and_nothing_it_counts():
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
    from fvcore.nn.jit_analysis import _IGNORED_OPS

    assert set(_IGNORED_OPS) <= cx.ZERO_COST_OPS
    assert not cx.ZERO_COST_OPS & (set(_DEFAULT_SUPPORTED_OPS) | set(cx.EXTRA_HANDLES))


class Cumsum(nn.Module):
    """Uses an operator mixnas deliberately leaves unhandled (a prefix sum is a chain of adds)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x).cumsum(dim=1)


def test_an_unhandled_operator_raises_naming_it_and_where():
    model = nn.Sequential(nn.Linear(4, 4), Cumsum())
    with pytest.raises(cx.UnhandledOperatorError, match=r"aten::cumsum.*'1'") as err:
        cx.count_macs(model, (torch.randn(2, 4),))
    assert err.value.ops == ("aten::cumsum (x1, in '1')",)  # for reports that name them (mixnas check-mixer)


def test_the_unhandled_error_tells_a_plugin_author_what_to_call():
    with pytest.raises(cx.UnhandledOperatorError, match=r"register_operator\(OP, macs=FUNCTION\)"):
        cx.count_macs(Cumsum(), (torch.randn(2, 4),))


def test_a_registered_operator_is_counted_by_its_handle(forget):
    model = nn.Sequential(nn.Linear(4, 4), Cumsum())
    x = torch.randn(3, 4)
    linears = 2 * 3 * 4 * 4
    seen = []

    def prefix_sum_adds(inputs, outputs):  # one add per element after the first along the summed axis
        seen.append((inputs, outputs))
        rows, cols = inputs[0]
        return rows * (cols - 1)

    cx.register_operator("aten::cumsum", prefix_sum_adds)
    assert cx.count_macs(model, (x,))[0] == linears + 3 * 3
    # shapes for tensors, None for the int dimension and the dtype
    assert seen[0] == ([[3, 4], None, None], [[3, 4]])
    assert cx.registered_operators() == {"aten::cumsum": prefix_sum_adds}


def test_an_operator_registered_as_free_counts_zero(forget):
    cx.register_operator("aten::cumsum")
    assert cx.count_macs(Cumsum(), (torch.randn(3, 4),))[0] == 3 * 4 * 4


@pytest.mark.parametrize("op, macs, message", [
    ("cumsum", None, "not an operator name; allowed: 'namespace::name'"),
    ("aten::matmul", None, "already counted by mixnas \\(a MAC handle\\)"),
    ("aten::gelu", None, "already counted by mixnas \\(zero cost\\)"),
    ("aten::cumsum", 3, "must be a function"),
])
def test_a_bad_operator_registration_is_refused(forget, op, macs, message):
    from mixnas.registry import RegistrationError

    with pytest.raises(RegistrationError, match=message):
        cx.register_operator(op, macs)
    assert op not in cx.registered_operators()


def test_an_operator_registered_twice_with_other_handles_is_refused(forget):
    from mixnas.registry import RegistrationError

    cx.register_operator("aten::cumsum")
    cx.register_operator("aten::cumsum")  # the same declaration again is harmless
    with pytest.raises(RegistrationError, match="registered twice"):
        cx.register_operator("aten::cumsum", lambda i, o: 0)


def test_a_handle_that_returns_no_count_fails_naming_the_operator(forget):
    cx.register_operator("aten::cumsum", lambda inputs, outputs: -1)
    with pytest.raises(cx.OperatorRuleError, match="registered for aten::cumsum returned -1"):
        cx.count_macs(Cumsum(), (torch.randn(3, 4),))


def test_a_registered_operator_changes_the_cache_version(forget):
    arch = tiny_mixer()
    before = cx._cache_version(arch)
    cx.register_operator("aten::cumsum")
    assert cx._cache_version(arch) != before and "op-aten::cumsum-free" in cx._cache_version(arch)


def test_unhandled_operator_in_an_architecture_raises(monkeypatch):
    monkeypatch.setattr(cx, "ZERO_COST_OPS", cx.ZERO_COST_OPS - {"aten::gelu"})
    with pytest.raises(cx.UnhandledOperatorError, match="aten::gelu"):
        cx.complexity(tiny_mixer())
    assert not list(cx.cache_dir().glob("*.json"))  # nothing cached


class StripLike(nn.Module):
    """The operators of the Strip-MLP family: convolutions, BatchNorm, GELU, adaptive average pooling,
    softmax re-weighting, a relative-position table indexed by a computed index, cat, and GRN's norm."""

    def __init__(self, c: int = 8, side: int = 4):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.dw = nn.Conv2d(c, c, (1, 3), padding=(0, 1), groups=c)
        self.reweight = nn.Conv2d(c, 3 * c, 1)
        self.fuse = nn.Conv2d(2 * c, c, 1)
        self.table = nn.Parameter(torch.randn(2 * side + 1, c))
        self.embedding = nn.Embedding(10, c)
        self.pool1d = nn.AdaptiveAvgPool1d(1)
        self.norm = nn.LayerNorm(c)
        self.side = side

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.dw(F.gelu(self.bn(x)))
        att = self.reweight(F.adaptive_avg_pool2d(y, 1)).reshape(n, c, 3).permute(2, 0, 1).softmax(dim=0)
        y = y * att[0, :, :, None, None] + x * att[1, :, :, None, None]
        r = torch.arange(h)
        index = torch.clamp(r[None, :] - r[:, None], -self.side, self.side) + self.side
        y = y + self.table[index].permute(2, 0, 1)[None]
        z = self.fuse(torch.cat([x, y], dim=1)).permute(0, 2, 3, 1)
        g = torch.norm(z, p=2, dim=(1, 2), keepdim=True)
        z = self.norm(z * (g / (g.mean(dim=-1, keepdim=True) + 1e-6)) + z)
        pooled = self.pool1d(z.flatten(1, 2).transpose(1, 2)).squeeze(-1)
        return pooled + self.embedding(torch.zeros(n, dtype=torch.long)) + F.relu(pooled) * torch.sigmoid(pooled)


def test_strip_mlp_operators_trace_with_the_expected_count():
    n, c, s = 2, 8, 4
    x = torch.randn(n, c, s, s)
    total, by_module = cx.count_macs(StripLike(c, s).eval(), (x,))
    e = n * c * s * s  # elements of one feature map
    assert by_module["bn"] == 2 * e  # inference BatchNorm with affine: fvcore's 2 per element
    assert by_module["dw"] == 3 * e  # depthwise 1x3
    assert by_module["reweight"] == n * c * 3 * c
    assert by_module["fuse"] == e * 2 * c
    assert by_module["pool1d"] == e
    assert by_module["norm"] == 5 * e  # fvcore's LayerNorm: 5 per element
    root = e + e + n * c  # adaptive_avg_pool2d, the L2 norm, the mean of the norms
    assert total == sum(by_module[m] for m in ("bn", "dw", "reweight", "fuse", "pool1d", "norm")) + root


# -- rows ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [tiny_mixer, tiny_vit, tiny_pyramid])
def test_rows_sum_to_totals_and_match_a_normally_built_model(make):
    arch = make()
    c = cx.complexity(arch, cache=False)
    assert sum(r.params for r in c.rows) == c.params
    assert sum(r.macs for r in c.rows) == c.macs
    model = build_model(arch).eval()
    assert c.params == sum(p.numel() for p in model.parameters())
    assert c.macs == cx.count_macs(model, (torch.zeros(1, 3, 32, 32),))[0]
    assert c.digest == arch.digest()


def test_a_model_the_fast_build_cannot_serve_is_built_normally(monkeypatch):
    expected = cx.complexity(tiny_vit(), cache=False)

    def fail(arch):
        raise RuntimeError("cannot build fast")
    monkeypatch.setattr(cx, "_fast_model", fail)
    assert cx.complexity(tiny_vit(), cache=False) == expected


def test_counting_restores_the_thread_count():
    before = torch.get_num_threads()
    cx.complexity(tiny_mixer(), cache=False)
    assert torch.get_num_threads() == before


def test_row_names_and_what_they_own():
    pyramid = cx.complexity(tiny_pyramid())
    assert [r.name for r in pyramid.rows] == ["stem", "stages.0", "stages.1", "stages.2", "fusion", "head"]
    # one grouped 2x2 stride-2 conv carries the merged stage-1 input (32 ch, 4x4) to stage 2 (64 ch, 2x2)
    assert pyramid.row("fusion") == cx.CostRow("fusion", params=64 * 1 * 2 * 2, macs=64 * 2 * 2 * (1 * 2 * 2))
    assert pyramid.row("stages.1").params > 0 and pyramid.row("stages.1").macs > 0
    vit = cx.complexity(tiny_vit())
    assert [r.name for r in vit.rows] == ["stem", "stages.0", "head"]
    stem_conv = 32 * 3 * 4 * 4 + 32
    assert vit.row("stem").params == stem_conv + 32 + 65 * 32  # patch conv, class token, position embedding
    assert vit.row("head").params == 2 * 32 + 32 * 10 + 10  # final LayerNorm and classifier
    mixer = cx.complexity(tiny_mixer())
    assert mixer.row("head").macs == 5 * 64 * 32 + 64 * 32 + 32 * 10  # LayerNorm, mean pool, classifier


def test_to_dict_round_trips_and_from_dict_rejects_malformed_records():
    c = cx.complexity(tiny_mixer())
    data = json.loads(json.dumps(c.to_dict()))
    assert cx.Complexity.from_dict(data) == c
    assert data["mac_convention"] == cx.MAC_CONVENTION
    for broken in ({**data, "macs": data["macs"] + 1}, {**data, "params": "12"}, {"digest": c.digest},
                   {**data, "mac_convention": "1 MAC = 2 FLOPs"}):
        with pytest.raises(ValueError):
            cx.Complexity.from_dict(broken)


# -- cache --------------------------------------------------------------------------------------------------


def _forbid_tracing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("traced again")
    monkeypatch.setattr(cx, "_analysis", fail)


def test_memory_hit_returns_the_same_object_without_tracing(monkeypatch):
    arch = tiny_mixer()
    first = cx.complexity(arch)
    _forbid_tracing(monkeypatch)
    assert cx.complexity(arch) is first
    assert cx.complexity(tiny_mixer().with_task(num_classes=10)) is first  # an equal config, another object


def test_disk_cache_survives_a_fresh_memory_cache(monkeypatch):
    arch = tiny_mixer()
    first = cx.complexity(arch)
    files = list(cx.cache_dir().glob(f"{arch.digest()}-*.json"))
    assert len(files) == 1 and not list(cx.cache_dir().glob(".*.tmp"))
    cx.clear_memory_cache()
    _forbid_tracing(monkeypatch)
    again = cx.complexity(arch)
    assert again == first and again is not first
    assert cx.complexity(arch) is again


@pytest.mark.parametrize("garbage", ["{not json", "", '{"cache_version": 1}', "[]",
                                     "VALID_BUT_INCONSISTENT"])
def test_a_corrupt_cache_file_is_recomputed_and_replaced(garbage):
    arch = tiny_mixer()
    first = cx.complexity(arch)
    (path,) = cx.cache_dir().glob(f"{arch.digest()}-*.json")
    if garbage == "VALID_BUT_INCONSISTENT":
        data = json.loads(path.read_text())
        data["complexity"]["macs"] += 1
        garbage = json.dumps(data)
    path.write_text(garbage)
    cx.clear_memory_cache()
    assert cx.complexity(arch) == first
    assert cx.Complexity.from_dict(json.loads(path.read_text())["complexity"]) == first


def test_numbers_from_other_code_are_not_served(monkeypatch):
    arch = tiny_mixer()
    cx.complexity(arch)
    cx.clear_memory_cache()
    calls = []
    real = cx._analysis
    monkeypatch.setattr(cx, "_analysis", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(cx, "_base_version", lambda: "schema-1;mixnas-9.9.9;src-other")
    cx.complexity(arch)
    assert calls == [1]
    assert len(list(cx.cache_dir().glob(f"{arch.digest()}-*.json"))) == 2


def test_cache_version_names_the_mixnas_version():
    assert f"mixnas-{__import__('mixnas').__version__}" in cx._cache_version(tiny_mixer())


def test_an_unwritable_cache_directory_does_not_fail(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("MIXNAS_CACHE", str(blocker))
    assert cx.complexity(tiny_mixer()).macs > 0


def test_cache_dir_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MIXNAS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cx.cache_dir() == tmp_path / "mixnas" / "complexity"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cx.cache_dir() == Path.home() / ".cache" / "mixnas" / "complexity"


# -- hygiene ------------------------------------------------------------------------------------------------


def test_only_the_complexity_module_imports_fvcore():
    importers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "mixnas").rglob("*.py")
                 if any(line.lstrip().startswith(("import fvcore", "from fvcore"))
                        for line in p.read_text().splitlines())]
    assert importers == ["mixnas/complexity.py"]


def test_importing_does_not_emit_fvcores_deprecation_warning_and_counting_stays_light():
    """Suppressed by message at import; and the fast build must not pull in torch._dynamo (about 2 s)."""
    code = ("import sys, warnings; warnings.simplefilter('error', DeprecationWarning); "
            "import mixnas.complexity as cx; from mixnas.zoo.vit import vit_arch; "
            "cx.complexity(vit_arch('t', 4, 32, 1, 2, image_size=32), cache=False); "
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "MIXNAS_CACHE": "/nonexistent"})
    assert result.returncode == 0, result.stderr[-2000:]


class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1000, 1000)
        self.table = nn.Parameter(torch.Tensor(9, 4))  # uninitialised real memory
        nn.init.trunc_normal_(self.table, std=0.02)  # rejection sampling: must terminate
        self.register_buffer("index", torch.arange(5)[None, :] - torch.arange(5)[:, None] + 4)
        self.bn = nn.BatchNorm1d(4)


def test_lazy_weights_skip_initialisation_but_keep_computed_buffers():
    with cx._LazyWeights():
        m = Lazy()
    assert m.fc.weight.is_meta and m.fc.bias.is_meta
    assert torch.equal(m.table, torch.zeros(9, 4))
    assert torch.equal(m.index, torch.arange(5)[None, :] - torch.arange(5)[:, None] + 4)
    assert torch.equal(m.bn.running_var, torch.ones(4))
