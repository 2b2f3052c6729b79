"""The proxy trainer: determinism, divergence, the wall-clock cap, early stop, checkpoints, knobs and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import mixnas.train as train_mod
from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.errors import MixnasError
from mixnas.train import (
    EpochMetrics,
    TrainConfig,
    evaluate,
    load_checkpoint,
    lr_at,
    param_groups,
    prepare,
    train,
)


def tiny_mixer(image_size: int = 16, in_channels: int = 1, num_classes: int = 10, dim: int = 32) -> ArchConfig:
    stage = StageSpec(depth=2, dim=dim, token_mixer=MixerSpec.of("mixer", token_hidden_dim=16),
                      channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=2 * dim))
    return ArchConfig(stages=(stage,), input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=4, dim=dim), head=HeadSpec(), name="tiny_mixer")


pytestmark = pytest.mark.usefixtures("one_thread")


FAST = dict(epochs=1, batch_size=64, warmup_epochs=0.2, image_size=None)


@pytest.fixture(scope="module")
def digits():
    from mixnas.data import load_dataset

    return load_dataset("digits", image_size=16, val_fraction=0.1, seed=0, test=True)


def _curve_numbers(result):
    return [{k: v for k, v in m.to_dict().items() if not k.endswith("_s") and k != "images_per_s"}
            for m in result.curve]


def test_same_seed_same_metrics_and_it_learns(digits):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-2, warmup_epochs=0.3)
    a = train(tiny_mixer(), digits, cfg, progress=False)
    b = train(tiny_mixer(), digits, cfg, progress=False)
    assert a.status == "completed" and a.epochs_completed == 3
    assert _curve_numbers(a) == _curve_numbers(b)
    assert a.val_top1 > 60.0  # 10 classes: chance is 10 % (this recipe reaches about 80 %)
    assert a.curve[-1].train_loss < a.curve[0].train_loss
    c = train(tiny_mixer(), digits, TrainConfig(epochs=3, batch_size=32, lr=1e-2, warmup_epochs=0.3, seed=1),
              progress=False)
    assert _curve_numbers(c) != _curve_numbers(a)


def test_the_callers_rng_is_untouched(digits):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(tiny_mixer(), digits, TrainConfig(**FAST), progress=False)
    assert torch.equal(before, torch.get_rng_state())


def test_result_carries_provenance_and_metrics_file_is_json(digits, tmp_path):
    path = tmp_path / "m.json"
    result = train(tiny_mixer(), digits, TrainConfig(**FAST), metrics_path=path, progress=False)
    saved = json.loads(path.read_text())
    arch = tiny_mixer()
    assert saved["status"] == "completed" and saved["digest"] == arch.digest()
    assert ArchConfig.from_dict(saved["arch"]) == arch
    assert saved["seed"] == 0 and saved["config"] == TrainConfig(**FAST).to_dict()
    assert saved["code"]["mixnas"] and "git_commit" in saved["code"]
    assert saved["env"]["threads"] == torch.get_num_threads()
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert saved["env"]["malloc_tuned"] is True  # mallopt accepted both settings
    assert saved["data"]["name"] == "digits" and saved["data"]["val"] == len(digits.val)
    assert saved["val_top1"] == result.val_top1 == result.curve[-1].val_top1
    m = saved["curve"][0]
    assert set(m) >= {"val_top1", "val_loss", "train_loss", "epoch_time_s", "images_per_s", "lr"}
    assert m["images_per_s"] > 0 and saved["test"] is None


def test_divergence_stops_with_a_reason_and_keeps_the_metrics(digits, tmp_path):
    path = tmp_path / "m.json"
    cfg = TrainConfig(epochs=2, batch_size=64, lr=1e6, warmup_epochs=0.0, grad_clip=0.0)
    result = train(tiny_mixer(), digits, cfg, metrics_path=path, progress=False)
    assert result.status == "diverged"
    assert "became nan" in result.reason or "became inf" in result.reason
    assert result.val_top1 is None and result.best_val_top1 is None
    saved = json.loads(path.read_text())
    assert saved["status"] == "diverged" and saved["reason"] == result.reason and saved["val_top1"] is None


def test_a_non_finite_gradient_norm_is_divergence_too(digits):
    result = train(tiny_mixer(), digits, TrainConfig(epochs=1, batch_size=64, lr=1e6, warmup_epochs=0.0),
                   progress=False)
    assert result.status == "diverged" and "epoch 1" in result.reason


def test_wall_clock_cap_gives_timeout_with_a_partial_epoch(digits, tmp_path):
    cfg = TrainConfig(epochs=50, batch_size=16, max_minutes=0.0005)  # 0.03 s
    result = train(tiny_mixer(), digits, cfg, metrics_path=tmp_path / "m.json", progress=False)
    assert result.status == "timeout" and "wall-clock cap of 0.0005 min" in result.reason
    assert len(result.curve) == 1 and result.curve[0].partial < 1.0
    assert result.val_top1 is not None  # the model as it was is still evaluated, and flagged partial
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "timeout"


def test_callback_sees_every_epoch_and_can_stop_early(digits):
    seen: list[EpochMetrics] = []

    def callback(metrics: EpochMetrics):
        seen.append(metrics)
        return "stop" if metrics.epoch == 2 else None

    result = train(tiny_mixer(), digits, TrainConfig(epochs=4, batch_size=64), callback=callback, progress=False)
    assert result.status == "stopped" and "after epoch 2 of 4" in result.reason
    assert [m.epoch for m in seen] == [1, 2] and len(result.curve) == 2
    assert all(math.isfinite(m.val_top1) and m.images_per_s > 0 for m in seen)


def test_checkpoint_stores_the_archconfig_and_reloads(digits, tmp_path):
    arch = tiny_mixer()
    result = train(arch, digits, TrainConfig(**FAST), checkpoint_path=tmp_path / "model.pt", progress=False,
                   final_eval=True)
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert ckpt.arch == arch and ckpt.arch.digest() == arch.digest()
    assert ckpt.config == TrainConfig(**FAST) and ckpt.result["digest"] == arch.digest()
    again = evaluate(ckpt.model, digits.test, digits)
    assert again["top1"] == pytest.approx(result.test["top1"])
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert raw["arch"] == arch.to_dict()
    with pytest.raises(MixnasError, match="not a mixnas checkpoint"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")


def test_final_eval_needs_the_test_split(digits):
    from mixnas.data import load_dataset

    no_test = load_dataset("digits", image_size=16)
    with pytest.raises(MixnasError, match="final evaluation needs the test split"):
        train(tiny_mixer(), no_test, TrainConfig(**FAST), final_eval=True, progress=False)
    result = train(tiny_mixer(), digits, TrainConfig(**FAST), final_eval=True, progress=False)
    assert result.test["images"] == len(digits.test) and 0 <= result.test["top1"] <= 100


def test_aux_loss_of_a_module_is_added_to_the_training_loss(digits, monkeypatch):
    class WithAux(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.aux_loss = None

        def forward(self, x):
            self.aux_loss = torch.tensor(5.0)
            return self.inner(x)

    base = train(tiny_mixer(), digits, TrainConfig(**FAST), progress=False)
    real_build = train_mod.build_model
    monkeypatch.setattr(train_mod, "build_model", lambda arch, seed=0: WithAux(real_build(arch, seed)))
    with_aux = train(tiny_mixer(), digits, TrainConfig(**FAST), progress=False)
    assert with_aux.curve[0].train_loss == pytest.approx(base.curve[0].train_loss + 5.0, rel=1e-5)
    assert with_aux.curve[0].val_top1 == base.curve[0].val_top1  # a constant adds no gradient


def test_bf16_autocast_trains(digits):
    result = train(tiny_mixer(), digits, TrainConfig(epochs=2, batch_size=64, bf16=True, lr=3e-3), progress=False)
    assert result.status == "completed" and result.val_top1 > 30.0


def test_adamw_implementations_give_the_same_training(digits):
    """``adamw`` picks torch's implementation of the same update: fused and for-loop agree to float rounding,
    and the field is left out of the saved config at its default (so older results keep their configs)."""
    base = dict(epochs=1, batch_size=64, lr=3e-3)
    loop = train(tiny_mixer(), digits, TrainConfig(**base, adamw="for-loop"), progress=False)
    fused = train(tiny_mixer(), digits, TrainConfig(**base, adamw="fused"), progress=False)
    assert fused.curve[-1].train_loss == pytest.approx(loop.curve[-1].train_loss, rel=1e-3)
    assert "adamw" not in TrainConfig().to_dict() and TrainConfig(adamw="fused").to_dict()["adamw"] == "fused"
    with pytest.raises(MixnasError, match="adamw must be null"):
        TrainConfig(adamw="lion")


def test_fraction_and_image_size_knobs():
    cfg = TrainConfig(epochs=1, batch_size=32, fraction=0.25, image_size=8)
    arch, data = prepare(tiny_mixer(), "digits", cfg)
    assert arch.input.image_size == 8 and data.image_size == 8
    result = train(arch, data, cfg, progress=False)
    assert result.data["train_used"] <= round(0.25 * len(data.train)) + 1
    assert result.arch["input"]["image_size"] == 8


def test_prepare_fits_data_to_the_arch_and_the_arch_to_the_dataset():
    arch, data = prepare(tiny_mixer(image_size=16, in_channels=3, num_classes=7), "digits")
    assert data.in_channels == 3 and data.image_size == 16 and arch.input.num_classes == 10
    named, data = prepare("mixer_s32_224", "digits")
    assert named.input.image_size == 32 and named.input.in_channels == 1 and data.image_size == 32


def test_mismatched_data_and_split_settings_are_refused(digits):
    with pytest.raises(MixnasError, match="the data are 1x16x16 with 10 classes but the architecture takes "
                                          "1x32x32"):
        train(tiny_mixer(image_size=32), digits, TrainConfig(**FAST))
    with pytest.raises(MixnasError, match="split with val_fraction 0.1 and seed 0, the TrainConfig says 0.2"):
        train(tiny_mixer(), digits, TrainConfig(epochs=1, val_fraction=0.2))


def test_no_weight_decay_on_norms_biases_and_embeddings():
    from mixnas.network import build_model

    arch = ArchConfig(stages=tiny_mixer().stages, input=InputSpec(16, 1, 10), stem=StemSpec(patch_size=4, dim=32),
                      pos_embed="learned", class_token=True, head=HeadSpec(pool="cls"))
    model = build_model(arch)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {"pos_embed", "cls_token", "head.bias", "head_norm.weight"} <= no_decay_names
    assert all(names[id(p)].endswith("weight") and p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    assert lr_at(0, 100, 10, 1.0, 0.01) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, 0.01) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0, 0.01) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, 0.01) == pytest.approx(0.505)
    assert lr_at(100, 100, 10, 1.0, 0.01) == pytest.approx(0.01)
    assert lr_at(0, 100, 0, 1.0, 0.01) == pytest.approx(1.0)


def test_train_config_validation_and_unknown_keys():
    with pytest.raises(MixnasError, match="train config: lr must be positive, found 0"):
        TrainConfig(lr=0)
    with pytest.raises(MixnasError, match="fraction must be in"):
        TrainConfig(fraction=1.5)
    with pytest.raises(MixnasError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict({"epochs": 2, "bf16": True}) == TrainConfig(epochs=2, bf16=True)
    from dataclasses import fields

    from mixnas.space import TRAIN_KEYS

    assert set(TRAIN_KEYS) <= {f.name for f in fields(TrainConfig)}  # a space's task.train maps onto TrainConfig


def test_cli_trains_on_digits_end_to_end(tmp_path, capsys):
    from mixnas.cli import main

    arch_file = tmp_path / "tiny.yaml"
    arch_file.write_text(tiny_mixer().to_yaml())
    out = tmp_path / "run"
    code = main(["train", str(arch_file), "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out), "--checkpoint", "--final-eval", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "epoch 1: train loss" in captured.out and "completed: trained 1 epochs" in captured.out
    assert "test top-1" in captured.out
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "completed" and saved["test"]["images"] > 0
    assert load_checkpoint(out / "model.pt").arch == tiny_mixer()


def test_cli_divergence_is_a_one_line_error_with_the_metrics_kept(tmp_path, capsys):
    from mixnas.cli import main

    arch_file = tmp_path / "tiny.yaml"
    arch_file.write_text(tiny_mixer().to_yaml())
    code = main(["train", str(arch_file), "--dataset", "digits", "--epochs", "1", "--lr", "1e6", "--grad-clip", "0",
                 "--warmup-epochs", "0", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("mixnas train: error: tiny_mixer diverged: the training loss became")
    assert "metrics written to" in err[-1]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"


def test_cli_unknown_dataset(capsys):
    from mixnas.cli import main

    assert main(["train", "mixer_s32_224", "--dataset", "cifar-10"]) == 2
    assert "unknown dataset 'cifar-10' (did you mean 'cifar10'?)" in capsys.readouterr().err


def test_sigterm_ends_a_cli_run_as_interrupted_with_the_metrics_written(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    arch_file = tmp_path / "tiny.yaml"
    arch_file.write_text(tiny_mixer().to_yaml())
    out = tmp_path / "run"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "mixnas.cli", "train", str(arch_file), "--dataset", "digits",
                             "--epochs", "1000", "--batch-size", "64", "--threads", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "metrics.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "interrupted" and len(saved["curve"]) >= 1


# -- the paper recipe (mixnas.data.augment) ----------------------------------------------------------------------

OLD_KEYS = ["epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "min_lr_ratio", "label_smoothing",
            "grad_clip", "bf16", "fraction", "val_fraction", "split_seed", "image_size", "augment", "crop_padding",
            "flip", "max_minutes", "seed", "eval_batch_size"]
PAPER = dict(rand_augment="rand-m9-mstd0.5-inc1", random_resized_crop=True, random_erasing=0.25, mixup_alpha=0.8,
             cutmix_alpha=1.0, eval_crop_pct=0.875)


def test_the_recipe_fields_are_left_out_of_saved_configs_at_their_defaults():
    assert list(TrainConfig().to_dict()) == OLD_KEYS  # every digest of a recipe that does not use them holds
    assert list(TrainConfig(epochs=2, mixup_switch_prob=0.5, crop_scale_min=0.08).to_dict()) == OLD_KEYS
    paper = TrainConfig(**PAPER).to_dict()
    assert list(paper) == OLD_KEYS + list(PAPER) and TrainConfig.from_dict(paper) == TrainConfig(**PAPER)


@pytest.mark.parametrize("kw, message", [
    (dict(rand_augment="rand-m9-mstd0.5-inc3"), "expected the form 'rand-m9-mstd0.5-inc1'"),
    (dict(random_erasing=1.5), "random_erasing must be in \\[0, 1\\]"),
    (dict(mixup_alpha=-1), "mixup_alpha must be a non-negative number"),
    (dict(mixup_switch_prob=2), "mixup_switch_prob must be in"),
    (dict(crop_scale_min=0), "crop_scale_min must be in \\(0, 1\\]"),
    (dict(eval_crop_pct=1.2), "eval_crop_pct must be in \\(0, 1\\] or null"),
    (dict(random_resized_crop=1), "random_resized_crop must be true or false"),
    (dict(augment=False, random_erasing=0.25), "random_erasing needs augment: true"),
    (dict(random_resized_crop=True, crop_padding=2), "cannot be combined with random_resized_crop"),
])
def test_recipe_field_validation(kw, message):
    with pytest.raises(MixnasError, match=message):
        TrainConfig(**kw)


def test_one_epoch_with_the_whole_paper_recipe_is_finite_and_deterministic(digits):
    cfg = TrainConfig(**FAST, **PAPER)
    a = train(tiny_mixer(), digits, cfg, progress=False, final_eval=True)
    b = train(tiny_mixer(), digits, cfg, progress=False)
    assert a.status == "completed" and math.isfinite(a.curve[-1].train_loss)
    assert 0.0 <= a.curve[-1].train_top1 <= 100.0 and a.test["images"] > 0
    assert _curve_numbers(a) == _curve_numbers(b) and a.config == cfg.to_dict()
    plain = train(tiny_mixer(), digits, TrainConfig(**FAST), progress=False)
    assert _curve_numbers(plain) != _curve_numbers(a)
