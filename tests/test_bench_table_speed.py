"""The table-speed benchmark's CPU-side logic: which architectures it times, and what it chooses from numbers."""

from __future__ import annotations

from types import SimpleNamespace

from bench.table_speed import VARIANTS, choice, pick_archs, render


def test_one_architecture_per_family_of_the_benchmark_space():
    archs = pick_archs(seed=0)
    families = [a.stages[0].token_mixer.name for a in archs]
    assert len(families) == len(set(families)) == 8 and "attention" in families
    assert [a.digest() for a in pick_archs(seed=0)] == [a.digest() for a in archs]


def test_the_choice_follows_the_numbers():
    totals = {"fp32": 1.0, "fp32 foreach": 0.97, "fp32 fused": 0.99, "bf16": 1.3}
    slow_compile = {"a": {"compile_s": 30.0, "eager": 0.01, "compiled": 0.009}}
    assert choice(totals, slow_compile, {"2 x 1 thread": 10.0, "1 x 2 threads": 12.0}, 337) == \
        "fp32, the default AdamW, no torch.compile, two one-thread jobs at a time"  # 3 % is not enough
    totals["fp32 fused"] = 0.8
    fast_compile = {"a": {"compile_s": 1.0, "eager": 0.02, "compiled": 0.01}}
    assert choice(totals, fast_compile, {"2 x 1 thread": 12.0, "1 x 2 threads": 10.0}, 337) == \
        "fp32, fused AdamW, torch.compile, one two-thread job at a time"
    assert choice(totals, {}, {"2 x 1 thread": 14.1, "1 x 2 threads": 13.5}, 337).endswith(
        "two one-thread jobs at a time")  # 4 % is within the noise of one round
    totals["bf16"] = 0.5
    assert choice(totals, {}, {}, 337).startswith("bf16 autocast, the default AdamW")


def test_render_names_every_variant():
    args = SimpleNamespace(repeats=3, steps=5, thread_steps=10, thread_rounds=1)
    per = {"mixer d16x2": {v: 0.01 for v in VARIANTS}}
    md = render(args, per, {}, {"2 x 1 thread": 1.0, "1 x 2 threads": 1.5}, 337)
    assert all(v in md for v in VARIANTS) and "takes 1.50x the wall time of two one-thread jobs" in md
    assert "**Chosen for the build**: fp32, the default AdamW" in md
