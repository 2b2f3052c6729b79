"""The ``mixnas export`` command (registered by :func:`register`).

``mixnas export RUN --trial N --onnx out.onnx`` exports one architecture of a search run to ONNX, with the
trial's trained weights when the search kept them (``--keep-checkpoints``), else with its initial weights. The
model is checked by ``onnx.checker`` and, with onnxruntime installed, compared with PyTorch's output
(:mod:`mixnas.onnx_io`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mixnas.errors import MixnasError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` command to the ``mixnas`` parser."""
    p = sub.add_parser("export", help="export an architecture of a search run to ONNX")
    p.add_argument("run", help="a search run folder")
    p.add_argument("--trial", type=int, required=True, help="trial number")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from mixnas.config import ArchConfig
    from mixnas.network import build_model
    from mixnas.onnx_io import OnnxExportError, export

    run = Path(args.run)
    rows = _trial_attrs(run, args.trial)
    arch = ArchConfig.from_dict(rows["arch"])
    model = build_model(arch, seed=int(rows.get("seed", 0)))
    ckpt = run / "checkpoints" / f"trial_{args.trial:05d}.pt"
    if ckpt.is_file():
        from mixnas.train import load_checkpoint

        model = load_checkpoint(ckpt).model
    model.eval()
    x = torch.randn(2, arch.input.in_channels, arch.input.image_size, arch.input.image_size,
                    generator=torch.Generator().manual_seed(0))
    try:
        exported = export(model, x, "image", "logits", args.onnx)
    except OnnxExportError as err:
        raise MixnasError(f"ONNX export of trial {args.trial} failed: {err}") from None
    print(f"wrote {args.onnx} (trial {args.trial}, digest {arch.digest()}"
          f"{', with its checkpoint' if ckpt.is_file() else ', initial weights: no checkpoint was kept'}): "
          f"{exported.summary()}")
    return 0


def _trial_attrs(run: Path, number: int) -> dict:
    from mixnas.analysis import checked_attrs, open_run_study, read_run_record

    _, where, trials = open_run_study(run, read_run_record(run))  # untrusted files: one error line each
    for t in trials:
        if t.number == number:
            attrs = checked_attrs(t, where)
            if attrs.get("arch") is None:
                raise MixnasError(f"{where}: trial {number} has no architecture (an invalid candidate)")
            return {**attrs, "state": t.state.name}
    raise MixnasError(f"{run}: no trial {number}")
