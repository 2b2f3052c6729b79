"""The mixer contract as checks a test or a user can run on one registered family.

Every family, built-in or from a plugin, must pass the same checks (``tests/test_mixer_contract.py`` runs
them on every registered family; ``mixnas check-mixer`` on one). Each check builds the family with its
defaults in a small reference context (an 8x8 grid, the first width of :data:`CANDIDATE_DIMS` whose defaults
resolve) and returns a :class:`CheckResult` (passed, failed or skipped as not applicable, with one line of
detail) instead of raising, so that a report can list them all:

* ``defaults``: the defaults resolve at some width (this fixes the reference context);
* ``shape``: ``forward(x)`` keeps the shape ``(B, N, C)``, dtype and finiteness in eval and train mode, with a
  class token too unless the family is spatial (which must refuse one);
* ``determinism``: building twice under one seed gives the same weights and the same output;
* ``fvcore``: :func:`mixnas.complexity.count_macs` counts every operator (an unhandled one is named);
* ``gradients``: a backward pass reaches the input and every parameter, with finite values;
* ``parameters``: every declared :class:`~mixnas.registry.Param` changes the built module (its parameter
  count or its output, in one of the first blocks of a stage: Hire-MLP's shift acts only in some blocks);
* ``compile``: ``torch.compile`` gives the eager output (slow the first time: 30-40 s on a CPU);
* ``onnx``: the legacy ONNX exporter (as ``mixnas export``) writes a model ``onnx.checker`` accepts and that,
  run by onnxruntime when it is installed, computes the module's output (:mod:`mixnas.onnx_io`).

An exception from the module's own code is a failed check whose detail names its type, file and line.
"""

from __future__ import annotations

import enum
import functools
import inspect
import traceback
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixnas.complexity import OperatorRuleError, UnhandledOperatorError, count_macs
from mixnas.errors import ArchError
from mixnas.registry import MixerContext, MixerFamily, Param

GRID = (8, 8)
CANDIDATE_DIMS = (64, 80, 96, 48, 128, 32, 160, 192, 256)  # the first whose defaults resolve is the reference
BATCH = 2
CHECKS = ("defaults", "shape", "determinism", "fvcore", "gradients", "parameters", "compile", "onnx")
SLOW_CHECKS = ("compile",)  # what a quick run leaves out
COMPILE_RTOL = 1e-4  # compiled vs eager: |a - b| <= RTOL * (1 + max |eager|); fused kernels reorder sums
CHANGE_TOL = 1e-4  # a parameter changes the output when the relative difference exceeds this


class Status(str, enum.Enum):
    """A check's outcome; ``skipped`` means not applicable (no declared parameter, no onnx package ...)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One check of one family: its name, outcome and one line saying why."""

    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail}


@dataclass(frozen=True)
class Reference:
    """The family at its reference context: width, grid, and params / MACs at batch size 1 (None when the
    defaults resolve nowhere or fvcore cannot count it)."""

    dim: int | None
    grid: tuple[int, int]
    params: int | None
    macs: int | None

    def describe(self) -> str:
        at = f"dim {self.dim}" if self.dim is not None else "no width"
        return f"{at}, {self.grid[0]}x{self.grid[1]} grid"


class _Failed(Exception):
    """A check's own verdict: the detail of a failure."""


class _NotApplicable(Exception):
    """A check that does not apply here, with the reason."""


# -- contexts, building and running ------------------------------------------------------------------------


def valid_contexts(family: MixerFamily) -> list[list[MixerContext]]:
    """For each candidate width whose defaults resolve: the context without prefix tokens and, for a
    non-spatial family, the one with a class token. Fails (``_Failed``) when no width resolves."""
    found, errors = [], []
    for dim in CANDIDATE_DIMS:
        ctxs = [MixerContext(dim, GRID, 0)] + ([] if family.spatial else [MixerContext(dim, GRID, 1)])
        try:
            for ctx in ctxs:
                family.resolve({}, ctx, "defaults")
        except ArchError as err:
            errors.append(f"dim {dim}: {err}")
            continue
        found.append(ctxs)
    if not found:
        raise _Failed(f"no width in {CANDIDATE_DIMS} on a {GRID[0]}x{GRID[1]} grid accepts the defaults ("
                      + "; ".join(errors[:2]) + (" ..." if len(errors) > 2 else "") + ")")
    return found


def contexts(family: MixerFamily) -> list[MixerContext]:
    """The reference contexts: the first width whose defaults resolve, without and (if allowed) with a class
    token."""
    return valid_contexts(family)[0]


def build(family: MixerFamily, params: Mapping[str, Any], ctx: MixerContext, seed: int = 0) -> nn.Module:
    """The family's module for ``params`` (defaults filled in) at ``ctx``, initialised under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build(family.resolve(params, ctx, "contract"), ctx)


def tokens(ctx: MixerContext, seed: int = 0, batch: int = BATCH) -> torch.Tensor:
    return torch.randn(batch, ctx.num_tokens, ctx.dim, generator=torch.Generator().manual_seed(seed))


def run(module: nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    """``module(x)`` without gradients, under a fixed seed (same dropout / routing for modules compared)."""
    module.train(train)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return module(x)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / (a.norm() + b.norm() + 1e-30))


def _raised(err: BaseException, family: MixerFamily) -> str:
    """``TypeError at FILE:LINE: message``, at the deepest frame in the family's own file (no place when it
    raised elsewhere: a frame deep in torch says nothing to the mixer's author)."""
    frames = traceback.extract_tb(err.__traceback__)
    try:
        own_file = str(Path(inspect.getfile(family.cls)).resolve())
    except (TypeError, OSError):
        own_file = None
    own = [f for f in frames if own_file and _same_file(f.filename, own_file)]
    where = f" at {own[-1].filename}:{own[-1].lineno}" if own else ""
    return f"{type(err).__name__}{where}: {_first_sentence(str(err))}".rstrip(": ")


def _first_sentence(text: str, limit: int = 160) -> str:
    """The first line of a message, cut to its first sentence when it is long (torch appends requests to file
    an issue)."""
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    if len(line) > limit and ". " in line:
        line = line.split(". ")[0] + "."
    return line


def _same_file(filename: str, resolved: str) -> bool:
    try:
        return str(Path(filename).resolve()) == resolved
    except OSError:
        return False


def _check(name: str) -> Callable[[Callable[..., str]], Callable[..., CheckResult]]:
    """Make a check body (returns the detail of a pass, raises ``_Failed`` / ``_NotApplicable``) into a function
    that returns a :class:`CheckResult`; any other exception (the module's own code) is a failure."""

    def wrap(body: Callable[..., str]) -> Callable[..., CheckResult]:
        @functools.wraps(body)
        def check(family: MixerFamily, *args: Any) -> CheckResult:
            try:
                detail = body(family, *args)
            except _NotApplicable as why:
                return CheckResult(name, Status.SKIPPED, str(why))
            except _Failed as why:
                return CheckResult(name, Status.FAILED, str(why))
            except Exception as err:  # noqa: BLE001 - the module's code: a failed check, with where it raised
                return CheckResult(name, Status.FAILED, _raised(err, family))
            return CheckResult(name, Status.PASSED, detail)

        return check

    return wrap


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


# -- the checks --------------------------------------------------------------------------------------------


@_check("defaults")
def check_defaults(family: MixerFamily) -> str:
    """The defaults resolve at some candidate width on the reference grid: that width is the reference."""
    dim = contexts(family)[0].dim
    tried = "" if dim == CANDIDATE_DIMS[0] else f" (the first of {', '.join(map(str, CANDIDATE_DIMS))} to resolve)"
    token = "" if family.spatial else ", with and without a class token"
    return f"resolve at dim {dim}{tried} on an {GRID[0]}x{GRID[1]} grid{token}"


@_check("shape")
def check_shape(family: MixerFamily) -> str:
    """``(B, N, C)`` in, the same shape, dtype out, finite, in eval and train mode (with a class token too)."""
    ctxs = contexts(family)
    for ctx in ctxs:
        x = tokens(ctx)
        for train in (False, True):
            out = run(build(family, {}, ctx), x, train)
            mode = "train" if train else "eval"
            if not isinstance(out, torch.Tensor):
                raise _Failed(f"forward returns {type(out).__name__}, not a tensor ({mode} mode)")
            if out.shape != x.shape:
                raise _Failed(f"{_shape(x)} in, {_shape(out)} out ({mode} mode, {ctx.num_prefix_tokens} prefix "
                              "tokens): a mixer keeps (B, N, C)")
            if out.dtype != x.dtype:
                raise _Failed(f"{x.dtype} in, {out.dtype} out ({mode} mode)")
            if not torch.isfinite(out).all():
                raise _Failed(f"non-finite output ({mode} mode, {ctx.num_prefix_tokens} prefix tokens)")
    if family.spatial:
        _refuses_class_token(family, ctxs[0])
    shapes = " and ".join(_shape(tokens(c)) for c in ctxs)
    return f"{shapes} kept in eval and train mode" + (", class token refused (spatial)" if family.spatial else "")


def _refuses_class_token(family: MixerFamily, ctx: MixerContext) -> None:
    try:
        family.resolve({}, MixerContext(ctx.dim, ctx.grid, 1), "contract")
    except ArchError as err:
        if "class token" in str(err):
            return
        raise _Failed(f"a class token is refused for another reason: {err}") from None
    raise _Failed("a spatial family accepts a class token")


@_check("determinism")
def check_determinism(family: MixerFamily) -> str:
    """Two builds under one seed have equal weights and outputs (a search's trial is reproducible)."""
    for ctx in contexts(family):
        a, b = build(family, {}, ctx, seed=3), build(family, {}, ctx, seed=3)
        sa, sb = a.state_dict(), b.state_dict()
        if list(sa) != list(sb):
            raise _Failed(f"two builds under one seed have different state keys: {sorted(set(sa) ^ set(sb))[:3]}")
        differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
        if differ:
            raise _Failed(f"two builds under one seed differ in {', '.join(differ[:3])}"
                          + (" ..." if len(differ) > 3 else ""))
        x = tokens(ctx)
        if not torch.equal(run(a, x, False), run(b, x, False)):
            raise _Failed("two builds under one seed give different eval outputs")
    return "same weights and outputs from two builds under one seed"


@_check("fvcore")
def check_fvcore(family: MixerFamily) -> str:
    """fvcore counts every operator of the forward pass (an unhandled one is named, with where it runs)."""
    counts = []
    for ctx in contexts(family):
        try:
            total, _ = count_macs(build(family, {}, ctx).eval(), (tokens(ctx, batch=1),))
        except UnhandledOperatorError as err:
            if isinstance(err, OperatorRuleError):
                raise _Failed(str(err)) from None
            first = err.ops[0].split(" ")[0] if err.ops else "OP"
            raise _Failed(f"fvcore cannot count {'; '.join(err.ops)}: declare it in the plugin with "
                          f"mixnas.complexity.register_operator('{first}', macs=FUNCTION) (macs=None if it does "
                          "no multiply-add)") from None
        counts.append(total)
    return f"{counts[0]:,} MACs at batch 1, every operator counted"


@_check("gradients")
def check_gradients(family: MixerFamily) -> str:
    """A backward pass in train mode reaches the input and every trainable parameter, with finite values."""
    for ctx in contexts(family):
        module = build(family, {}, ctx).train()
        x = tokens(ctx).requires_grad_(True)
        out = module(x)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        (out * weights).sum().backward()
        if x.grad is None or not x.grad.abs().sum() > 0:
            raise _Failed("no gradient reaches the input")
        if not torch.isfinite(x.grad).all():
            raise _Failed("the input's gradient is not finite")
        missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
        if missing:
            raise _Failed(f"no gradient reaches {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
        bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            raise _Failed(f"non-finite gradient of {', '.join(bad[:5])}")
    count = sum(1 for p in module.parameters() if p.requires_grad)
    return f"reach the input and all {count} parameter tensors, finite" if count else "reach the input (no parameters)"


def other_values(param: Param, default: Any) -> list[Any]:
    """Non-default values to try, most natural first."""
    if param.kind is bool:
        return [not default]
    if param.choices is not None:
        return [c for c in param.choices if c != default]
    if param.kind is int:
        steps = [default * 2, default // 2, default + 2, default - 2, default + 1, default - 1, default * 3,
                 default + 4, default - 4, default * 4, default + 8, default - 8, 1, 2, 4, 8]
    elif param.kind is float:
        steps = [default * 2, default / 2, default + 0.5, default - 0.5, default + 0.1, default - 0.1,
                 0.0, 0.5, 1.0, 2.0]
    else:
        raise _Failed(f"parameter {param.name!r} of kind {param.kind.__name__} declares no choices: the contract "
                      "cannot pick another value (declare choices=...)")
    return list(dict.fromkeys(v for v in steps if v != default))


def _changes(family: MixerFamily, name: str, value: Any, ctx: MixerContext) -> list[float] | None:
    """None when ``name=value`` changes the parameter count in one of the first 4 blocks, else the relative
    output differences from the default (eval and train, per block)."""
    diffs = []
    for block in range(4):  # a parameter may act only in some blocks of a stage
        at = replace(ctx, block_index=block)
        base, changed = build(family, {}, at), build(family, {name: value}, at)
        if n_params(base) != n_params(changed):
            return None
        x = tokens(at)
        diffs += [relative_difference(run(base, x, train), run(changed, x, train)) for train in (False, True)]
    return diffs


@_check("parameters")
def check_parameter(family: MixerFamily, name: str) -> str:
    """The first valid non-default value of parameter ``name`` changes the parameter count or the output."""
    param = family.param(name)
    tried = []
    for ctxs in valid_contexts(family):
        ctx = ctxs[-1]  # with a class token where the family takes one
        default = family.resolve({}, ctx, "contract")[name]
        for value in other_values(param, default):
            try:
                family.resolve({name: value}, ctx, "contract")
            except ArchError:
                tried.append(f"dim {ctx.dim}: {value!r}")
                continue
            diffs = _changes(family, name, value, ctx)
            if diffs is None:
                return f"{name}={value!r} instead of {default!r} changes the parameter count"
            if max(diffs) <= CHANGE_TOL:
                raise _Failed(f"{name}={value!r} instead of {default!r} changes neither the parameter count nor "
                              f"the output (largest relative difference {max(diffs):.1e}): a declared parameter "
                              "must change the module")
            return f"{name}={value!r} instead of {default!r} changes the output (by {max(diffs):.1e})"
    raise _Failed(f"no valid non-default value of {name!r} found; tried {', '.join(tried[:6])}"
                  + (" ..." if len(tried) > 6 else ""))


@_check("parameters")
def check_parameters(family: MixerFamily) -> str:
    """Every declared parameter changes the module (:func:`check_parameter` on each)."""
    if not family.params:
        raise _NotApplicable("no declared parameters")
    for p in family.params:
        result = check_parameter(family, p.name)
        if result.failed:
            raise _Failed(result.detail)
    if len(family.params) == 1:
        return f"its declared parameter ({family.params[0].name}) changes the module"
    return f"all {len(family.params)} declared parameters change the module"


@_check("compile")
def check_compile(family: MixerFamily) -> str:
    """``torch.compile`` of the module gives the eager output (eval mode) within :data:`COMPILE_RTOL`."""
    ctx = contexts(family)[0]
    module, x = build(family, {}, ctx).eval(), tokens(ctx)
    eager = run(module, x, False)
    import torch._dynamo  # noqa: F401 - for its reset()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch's own, from inside the compiler
            compiled = run(torch.compile(module), x, False)
    except Exception as err:
        unavailable = _compile_unavailable()
        if unavailable:
            raise _NotApplicable(f"torch.compile does not work here: {unavailable}") from None
        raise _Failed(f"torch.compile failed: {_raised(err, family)}") from None
    finally:
        torch._dynamo.reset()  # free the compiled graphs; a later check starts clean
    gap = float((compiled - eager).abs().max()) if eager.numel() else 0.0
    tolerance = COMPILE_RTOL * (1 + float(eager.abs().max()) if eager.numel() else 1)
    if compiled.shape != eager.shape or not gap <= tolerance:
        raise _Failed(f"compiled output differs from eager (largest difference {gap:.1e}, tolerance "
                      f"{tolerance:.1e})")
    return f"compiled output matches eager (largest difference {gap:.1e})"


@functools.cache
def _compile_unavailable() -> str | None:
    """Why ``torch.compile`` fails on a trivial function here (no C++ compiler, an unsupported Python ...), or
    None when it works: then a failure is the module's."""
    try:
        torch.compile(lambda t: t * 2 + 1)(torch.ones(2))
    except Exception as err:  # noqa: BLE001 - any reason is reported
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[0] if lines else ''}"
    finally:
        torch._dynamo.reset()
    return None


@_check("onnx")
def check_onnx(family: MixerFamily) -> str:
    """The legacy TorchScript exporter (``dynamo=False``, as ``mixnas export``) writes a model that
    ``onnx.checker`` accepts and, when onnxruntime is installed, that computes what the module computes
    (:func:`mixnas.onnx_io.export`)."""
    from mixnas.onnx_io import OnnxExportError, OnnxUnavailable, export

    ctx = contexts(family)[0]
    try:
        return export(build(family, {}, ctx), tokens(ctx), "tokens", "mixed").summary()
    except OnnxUnavailable:
        raise _NotApplicable("the onnx package is not installed (pip install 'mixnas[export]')") from None
    except OnnxExportError as err:
        cause = err.__cause__
        raise _Failed(f"torch.onnx.export failed: {_raised(cause, family)}" if cause else str(err)) from None


# -- all of them -------------------------------------------------------------------------------------------

_BODIES: dict[str, Callable[[MixerFamily], CheckResult]] = {
    "defaults": check_defaults, "shape": check_shape, "determinism": check_determinism, "fvcore": check_fvcore,
    "gradients": check_gradients, "parameters": check_parameters, "compile": check_compile, "onnx": check_onnx,
}


def check_mixer(family: MixerFamily, skip: Collection[str] | Mapping[str, str] = ()) -> list[CheckResult]:
    """Every check of :data:`CHECKS` on ``family``, in order. ``skip`` names checks not to run (a mapping gives
    each one the reason shown); when the defaults resolve at no width, the rest are not run."""
    unknown = [s for s in skip if s not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    results = []
    for name in CHECKS:
        if name in skip:
            reason = skip[name] if isinstance(skip, Mapping) else "skipped on request"
            results.append(CheckResult(name, Status.SKIPPED, f"not run: {reason}"))
        elif results and results[0].failed:
            results.append(CheckResult(name, Status.SKIPPED, "not run: the defaults resolve at no width"))
        else:
            results.append(_BODIES[name](family))
    return results


def reference(family: MixerFamily) -> Reference:
    """Params and MACs (batch 1) of the family's default module at its reference context (no class token)."""
    try:
        ctx = contexts(family)[0]
    except _Failed:
        return Reference(None, GRID, None, None)
    try:
        module = build(family, {}, ctx).eval()
    except Exception:  # noqa: BLE001 - the checks report why it does not build
        return Reference(ctx.dim, GRID, None, None)
    try:
        macs, _ = count_macs(module, (tokens(ctx, batch=1),))
    except Exception:  # noqa: BLE001 - the fvcore check reports why
        macs = None
    return Reference(ctx.dim, GRID, n_params(module), macs)


__all__ = ["BATCH", "CANDIDATE_DIMS", "CHECKS", "GRID", "SLOW_CHECKS", "CheckResult", "Reference", "Status",
           "check_compile", "check_defaults", "check_determinism", "check_fvcore", "check_gradients",
           "check_mixer", "check_onnx", "check_parameter", "check_parameters", "check_shape", "contexts",
           "reference", "valid_contexts"]
