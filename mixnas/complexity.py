"""Parameter and multiply-add counts of an architecture, per stage, cached by digest.

This is the only module of mixnas that imports fvcore.

Convention
    1 MAC = 1 multiply-add, which is fvcore's own unit and what vision-MLP papers call "FLOPs". fvcore's
    default handles are kept (matmul-like ops and convolutions count their multiply-adds; LayerNorm counts
    5 per element with an affine, inference BatchNorm 2 per element, ``adaptive_avg_pool2d`` 1 per input
    element), which is how timm's published GMACs are counted. mixnas adds handles for what fvcore misses:

    * ``aten::scaled_dot_product_attention``: ``q @ k^T`` and ``attn @ v`` as dense products,
      ``batch * heads * Nq * Nk * (d + dv)`` (causal masks and fused kernels are not discounted);
    * ``aten::matmul`` is re-handled so broadcast batch dimensions count (fvcore's handle counts
      ``(D, N) @ (B, N, C)`` as one batch element); ``aten::baddbmm`` counts like ``bmm``;
    * averaging reductions (``mean``, ``sum``, ``adaptive_avg_pool1d/3d``) count 1 per input element and
      ``avg_pool1d/2d`` 1 per window element, fvcore's ``adaptive_avg_pool2d`` rule, so equivalent spellings
      of one pooling agree; vector norms (``linalg_vector_norm``, ``norm``) count 1 per input element (a
      sum of squares).

    Operators that do no multiply-add (shape and memory ops, indexing, elementwise arithmetic and
    activations, softmax, comparisons, dropout) are listed in :data:`ZERO_COST_OPS` and count 0. An
    operator that is neither handled nor listed raises :class:`UnhandledOperatorError`: a silent undercount
    is a mixnas bug.

Counting
    The model is built with :func:`mixnas.network.build_model`, in eval mode, and traced once at batch
    size 1 with the architecture's input size under ``torch.no_grad()``. Counts depend on shapes only, so
    weights are allocated on the meta device and not initialised while building, and every float32
    parameter then becomes a view of one shared zero-filled block (initialising and paging in 60M weights
    costs more than tracing them). If that fails for some exotic module, the model is rebuilt normally and
    traced again. The trace runs with one intra-op thread (restored afterwards): on a busy 2-core machine
    two threads made it about 4x slower, and parallel workers should not compete for cores to count.

Breakdown
    :attr:`Complexity.rows` splits the totals over ``stem`` (patch embedding, stem norm, class token and
    position embedding), ``stages.i`` (the patch merging and blocks of stage ``i``), ``fusion`` (Strip-MLP
    cross-stage fusion, only when present) and ``head`` (final norm, pooling and classifier). The rows sum
    exactly to the totals.

Cache
    Results are cached in memory and as one JSON file per digest under ``$MIXNAS_CACHE/complexity/`` (or
    ``~/.cache/mixnas/complexity/``; ``$XDG_CACHE_HOME`` is honoured). The key is the architecture digest
    plus a cache version made of mixnas' ``__version__``, a hash of mixnas' source files (and of the source
    of any mixer registered from outside the package), and the fvcore and torch versions, so numbers from
    other code are never served. Writes are atomic; an unreadable or corrupt file is recomputed and
    replaced.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from mixnas import __version__
from mixnas.config import ArchConfig
from mixnas.network import build_model
from mixnas.registry import RegistrationError, get_mixer

with warnings.catch_warnings():
    # fvcore decorates helpers with torch.jit.script at import time; torch >= 2.10 deprecates it.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated",
                            category=DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

__all__ = ["EXTRA_HANDLES", "MAC_CONVENTION", "ZERO_COST_OPS", "Complexity", "CostRow", "UnhandledOperatorError",
           "cache_dir", "clear_memory_cache", "complexity", "count_macs", "register_operator", "registered_operators",
           "OperatorRuleError"]

log = logging.getLogger(__name__)

MAC_CONVENTION: str = "1 MAC = 1 multiply-add (what MLP papers call FLOPs)"

# Operators counted as 0 MACs. fvcore silently ignores its own list (``fvcore.nn.jit_analysis._IGNORED_OPS``);
# every entry of that list is repeated here so this set is the complete documentation of what counts 0
# (a test checks the inclusion).
ZERO_COST_OPS: frozenset[str] = frozenset({
    # shape, view and layout: no arithmetic, at most a copy
    "aten::view", "aten::reshape", "aten::flatten", "aten::unflatten", "aten::permute", "aten::transpose",
    "aten::t", "aten::squeeze", "aten::unsqueeze", "aten::unsqueeze_", "aten::expand", "aten::expand_as",
    "aten::contiguous", "aten::clone", "aten::movedim", "aten::numpy_T", "aten::chunk", "aten::split",
    "aten::split_with_sizes", "aten::unbind", "aten::narrow", "aten::select", "aten::slice", "aten::cat",
    "aten::stack", "aten::repeat", "aten::roll", "aten::flip", "aten::pixel_shuffle", "aten::pixel_unshuffle",
    # padding: copies, no arithmetic
    "aten::pad", "aten::constant_pad_nd", "aten::reflection_pad1d", "aten::reflection_pad2d",
    "aten::replication_pad1d", "aten::replication_pad2d",
    # unfolding windows (RaftMLP's cross-scale embedding): a copy into columns, no arithmetic
    "aten::im2col",
    # mixture-of-experts routing and dispatch: selection, counting, gathers and scatter-adds
    "aten::topk", "aten::sort", "aten::index_add",
    # indexing and table lookups (relative-position tables, embeddings): gathers, no arithmetic
    "aten::index", "aten::index_put_", "aten::index_select", "aten::gather", "aten::embedding",
    "aten::masked_fill", "aten::masked_fill_", "aten::where",
    # tensor creation, memory, dtype and bookkeeping
    "aten::zeros", "aten::zeros_like", "aten::ones", "aten::ones_like", "aten::empty", "aten::empty_like",
    "aten::full", "aten::full_like", "aten::new_empty", "aten::new_full", "aten::new_zeros", "aten::new_ones",
    "aten::arange", "aten::to", "aten::type_as", "aten::copy_", "aten::detach", "aten::lift_fresh",
    "aten::alias", "aten::size", "aten::Int", "aten::ScalarImplicit",
    # elementwise arithmetic: 0 under the convention (fvcore and timm count it as 0); the fused forms
    # (addcmul, addcdiv, lerp) too, so that `a + b * c` counts the same however it is spelled
    "aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::rsub", "aten::mul", "aten::mul_",
    "aten::div", "aten::div_", "aten::addcmul", "aten::addcmul_", "aten::addcdiv", "aten::lerp",
    "aten::neg", "aten::abs", "aten::sign", "aten::square", "aten::pow", "aten::sqrt", "aten::rsqrt",
    "aten::exp", "aten::log", "aten::reciprocal", "aten::sin", "aten::cos", "aten::clamp", "aten::clamp_",
    "aten::clamp_min", "aten::clamp_max", "aten::maximum", "aten::minimum", "aten::floor",
    "aten::floor_divide", "aten::remainder",
    # activations: elementwise
    "aten::gelu", "aten::gelu_", "aten::relu", "aten::relu_", "aten::silu", "aten::silu_", "aten::sigmoid",
    "aten::sigmoid_", "aten::tanh", "aten::hardswish", "aten::hardsigmoid", "aten::leaky_relu", "aten::elu",
    "aten::softplus", "aten::mish", "aten::erf",
    # softmax: exp, row sum and divide, counted as 0 like fvcore and timm's published numbers
    "aten::softmax", "aten::log_softmax", "aten::_softmax",
    # comparisons, logic, integer ops and max/min reductions (no multiply-add)
    "aten::eq", "aten::ne", "aten::lt", "aten::le", "aten::gt", "aten::ge", "aten::__and__",
    "aten::bitwise_not", "aten::max", "aten::min", "aten::amax", "aten::argmax", "aten::nonzero",
    "aten::max_pool1d", "aten::max_pool2d",
    # regularisers that are the identity at inference
    "aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::bernoulli_",
    # mixnas' own operators that only move memory: AS-MLP's zero-filled axial shift (mixnas.mixers.asmlp)
    "mixnas::axial_shift",
})


class UnhandledOperatorError(RuntimeError):
    """An operator with neither a MAC handle nor a place in :data:`ZERO_COST_OPS` (a mixnas bug, or a plugin
    mixer's operator). ``ops``: each such operator with its count and the modules it runs in
    (``aten::cumsum (x1, in 'proj')``), for reports that name them."""

    def __init__(self, message: str, ops: tuple[str, ...] = ()):
        super().__init__(message)
        self.ops = ops


# -- handles ---------------------------------------------------------------------------------------------


def _shape(value: Any) -> list[int]:
    shape = get_shape(value)
    if shape is None:
        raise RuntimeError(f"fvcore traced an operand without a complete shape: {value}")
    return list(shape)


def _batch_dims(*shapes: list[int]) -> int:
    """Product of the broadcast leading dimensions (per aligned dimension the largest size, so grouped
    key/value heads count as many times as query heads)."""
    rank = max(len(s) for s in shapes)
    padded = [[1] * (rank - len(s)) + list(s) for s in shapes]
    return math.prod(max(dims) for dims in zip(*padded))


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """``scaled_dot_product_attention(q, k, v, ...)``: ``q @ k^T`` plus ``attn @ v``."""
    q, k, v = (_shape(x) for x in inputs[:3])
    n_q, d = q[-2], q[-1]
    n_k, d_v = k[-2], v[-1]
    return _batch_dims(q[:-2], k[:-2], v[:-2]) * n_q * n_k * (d + d_v)


def _matmul_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """``matmul`` / ``mm`` with numpy broadcasting of the batch dimensions and 1-D operands."""
    a, b = _shape(inputs[0]), _shape(inputs[1])
    if len(a) == 1:
        a = [1, a[0]]
    if len(b) == 1:
        b = [b[0], 1]
    return _batch_dims(a[:-2], b[:-2]) * a[-2] * a[-1] * b[-1]


def _baddbmm_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """``baddbmm(input, batch1, batch2)``: the batched product; the scaled add counts 0."""
    n, m, k = _shape(inputs[1])
    return n * m * k * _shape(inputs[2])[-1]


def _input_elements(inputs: list[Any], outputs: list[Any]) -> int:
    """Averaging reductions and vector norms: one (multiply-)add per input element."""
    return math.prod(_shape(inputs[0]))


def _int_list(value: Any) -> list[int]:
    """A traced int-list argument: a constant, or a ``prim::ListConstruct`` of constants (what
    ``F.avg_pool2d(x, 3, ...)`` traces to: its ``toIValue()`` is None)."""
    constant = value.toIValue()
    if constant is None and value.node().kind() == "prim::ListConstruct":
        constant = [v.toIValue() for v in value.node().inputs()]
    if constant is None or (not isinstance(constant, int) and None in constant):
        raise ValueError(f"a non-constant int list in the traced graph: {value}")
    return [constant] if isinstance(constant, int) else list(constant)


def _avg_pool_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """``avg_pool1d/2d``: one add per output element and window element."""
    return math.prod(_shape(outputs[0])) * math.prod(_int_list(inputs[1]))


EXTRA_HANDLES: Mapping[str, Any] = {
    "aten::scaled_dot_product_attention": _sdpa_macs,
    "aten::matmul": _matmul_macs,
    "aten::mm": _matmul_macs,
    "aten::baddbmm": _baddbmm_macs,
    "aten::mean": _input_elements,
    "aten::sum": _input_elements,
    "aten::adaptive_avg_pool1d": _input_elements,
    "aten::adaptive_avg_pool3d": _input_elements,
    "aten::avg_pool1d": _avg_pool_macs,
    "aten::avg_pool2d": _avg_pool_macs,
    "aten::linalg_vector_norm": _input_elements,
    "aten::norm": _input_elements,
    "aten::frobenius_norm": _input_elements,
}
"""Handles mixnas adds to (or replaces in) fvcore's defaults, by operator."""

ShapeHandle = Callable[[list[list[int] | None], list[list[int] | None]], int]
_PLUGIN_OPS: dict[str, ShapeHandle | None] = {}
_OP_NAME = re.compile(r"^[A-Za-z_]\w*::[A-Za-z_]\w*(\.\w+)?$")


class OperatorRuleError(UnhandledOperatorError):
    """A MAC rule a plugin registered (:func:`register_operator`) returned something that is not a count."""


def register_operator(op: str, macs: ShapeHandle | None = None) -> None:
    """Teach the counter an operator that a plugin's mixer runs and mixnas does not know (a custom
    ``torch.library`` operator, or an ``aten`` one no built-in mixer uses): ``macs(input_shapes,
    output_shapes) -> int`` gets each traced input's and output's shape (None for an argument that is not a
    tensor, such as an int) and returns its multiply-adds; ``macs=None`` declares that it does none (memory,
    indexing, integer bookkeeping). Call it at the top level of the plugin file, next to ``register_mixer``:
    workers import the plugin, so they count the same.

    An unknown operator otherwise fails the count (:class:`UnhandledOperatorError`): a silent undercount
    would put the mixer at a false place on every accuracy/MACs front. Raises
    :class:`mixnas.registry.RegistrationError` for a malformed name, an operator mixnas already counts, a
    handle that is not callable, or a second registration of one operator with another handle."""
    if not isinstance(op, str) or not _OP_NAME.match(op):
        raise RegistrationError(f"register_operator: {op!r} is not an operator name; allowed: "
                                "'namespace::name' as the traced graph spells it, e.g. 'aten::cumsum', 'mylib::shift'")
    if op in EXTRA_HANDLES or op in ZERO_COST_OPS:
        raise RegistrationError(f"register_operator: {op} is already counted by mixnas "
                                f"({'a MAC handle' if op in EXTRA_HANDLES else 'zero cost'}); it cannot be replaced")
    if macs is not None and not callable(macs):
        raise RegistrationError(f"register_operator: macs for {op} must be a function (input_shapes, "
                                f"output_shapes) -> int, or None for no multiply-adds; found {type(macs).__name__}")
    if op in _PLUGIN_OPS and _PLUGIN_OPS[op] is not macs:
        raise RegistrationError(f"register_operator: {op} is registered twice with different handles")
    _PLUGIN_OPS[op] = macs


def registered_operators() -> dict[str, ShapeHandle | None]:
    """The operators plugins registered (:func:`register_operator`), by name."""
    return dict(_PLUGIN_OPS)


def _fvcore_handle(op: str, macs: ShapeHandle) -> Any:
    """An fvcore handle calling a plugin's shape-level ``macs`` and checking what it returns."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        count = macs([get_shape(v) for v in inputs], [get_shape(v) for v in outputs])
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise OperatorRuleError(f"the MAC handle registered for {op} returned {count!r}; it must return "
                                    "a non-negative int", (op,))
        return count

    return handle


# -- counting --------------------------------------------------------------------------------------------


def _analysis(model: nn.Module, inputs: tuple[Tensor, ...]) -> FlopCountAnalysis:
    """Trace ``model(*inputs)`` with mixnas' handles; raise on operators that are neither handled nor free."""
    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**EXTRA_HANDLES)
    analysis.set_op_handle(**{op: None for op in ZERO_COST_OPS})
    analysis.set_op_handle(**{op: None if macs is None else _fvcore_handle(op, macs)
                              for op, macs in _PLUGIN_OPS.items()})
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        analysis.total()
    unhandled = analysis.unsupported_ops()
    if unhandled:
        ops = _describe_unhandled(analysis, unhandled)
        raise UnhandledOperatorError("no MAC handle for " + "; ".join(ops) + ". A plugin declares its operators "
                                     "with mixnas.complexity.register_operator(OP, macs=FUNCTION) (macs=None if it "
                                     "does no multiply-add); mixnas' own go in EXTRA_HANDLES or ZERO_COST_OPS", ops)
    return analysis


def _describe_unhandled(analysis: FlopCountAnalysis, unhandled: Counter) -> tuple[str, ...]:
    """Each unhandled operator, its count and the deepest modules it runs in: ``aten::cumsum (x1, in 'proj')``."""
    names = list(analysis.by_module())
    parts = []
    for op, n in sorted(unhandled.items()):
        where = [m for m in names if analysis.unsupported_ops(m)[op]]
        deepest = [m for m in where if not any(o != m and (m == "" or o.startswith(m + ".")) for o in where)]
        shown = ", ".join(repr(m or "<model>") for m in deepest[:3]) + (" ..." if len(deepest) > 3 else "")
        parts.append(f"{op} (x{n}, in {shown})")
    return tuple(parts)


def _int(value: float) -> int:
    return int(round(value))


def count_macs(model: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[int, dict[str, int]]:
    """Multiply-adds of ``model(*inputs)``: the total and fvcore's per-module counts (``by_module()``).

    The model is traced as it is (set eval mode yourself); raises :class:`UnhandledOperatorError` if it
    runs an operator that is neither handled nor in :data:`ZERO_COST_OPS`.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    analysis = _analysis(model, tuple(inputs))
    by_module = {name: _int(v) for name, v in analysis.by_module().items()}
    return by_module[""], by_module


# -- results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    """One row of a breakdown: ``stem``, ``stages.i``, ``fusion`` (only if present) or ``head``."""

    name: str
    params: int
    macs: int


@dataclass(frozen=True)
class Complexity:
    """Parameters and multiply-adds (:data:`MAC_CONVENTION`) of one architecture, with a per-stage breakdown."""

    digest: str
    params: int
    macs: int
    rows: tuple[CostRow, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        if sum(r.params for r in self.rows) != self.params or sum(r.macs for r in self.rows) != self.macs:
            raise ValueError(f"rows of {self.digest} do not sum to params={self.params}, macs={self.macs}")

    def row(self, name: str) -> CostRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "params": self.params, "macs": self.macs,
                "rows": [{"name": r.name, "params": r.params, "macs": r.macs} for r in self.rows],
                "mac_convention": MAC_CONVENTION}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Complexity:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything malformed."""
        try:
            convention = data.get("mac_convention", MAC_CONVENTION)
            if convention != MAC_CONVENTION:
                raise ValueError(f"counted under another convention: {convention!r}")
            rows = tuple(CostRow(_str(r["name"]), _count(r["params"]), _count(r["macs"])) for r in data["rows"])
            return cls(_str(data["digest"]), _count(data["params"]), _count(data["macs"]), rows)
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not a Complexity record: {err!r}") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, found {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, found {value!r}")
    return value


# -- breakdown -------------------------------------------------------------------------------------------

# Where each direct child (or direct parameter) of mixnas.network.Network belongs; "stages" is split per stage.
_ROW_OF_CHILD = {"stem": "stem", "stem_norm": "stem", "stem_act": "stem", "cls_token": "stem", "pos_embed": "stem",
                 "stages": "stages", "fusion": "fusion", "head_norm": "head", "head_drop": "head", "head": "head"}
# Operators that Network runs outside any submodule (its own forward), by fvcore's short name.
_ROW_OF_ROOT_OP = {"mean": "head"}  # the global mean pool


def _row_names(arch: ArchConfig) -> list[str]:
    return (["stem"] + [f"stages.{i}" for i in range(len(arch.stages))]
            + (["fusion"] if arch.cross_stage_fusion else []) + ["head"])


def _row_of(name: str) -> str:
    head, _, rest = name.partition(".")
    row = _ROW_OF_CHILD.get(head)
    if row is None:
        raise RuntimeError(f"mixnas.complexity does not know which row Network.{head} belongs to")
    return f"stages.{rest.partition('.')[0]}" if row == "stages" else row


def _breakdown(arch: ArchConfig, model: nn.Module, analysis: FlopCountAnalysis) -> Complexity:
    rows = {name: [0, 0] for name in _row_names(arch)}
    for name, p in model.named_parameters():
        rows[_row_of(name)][0] += p.numel()
    by_module = analysis.by_module_and_operator()
    root_only = Counter(by_module[""])
    for child, _ in model.named_children():
        root_only.subtract(by_module[child])
        if child == "stages":
            for i in range(len(arch.stages)):
                rows[f"stages.{i}"][1] += _int(sum(by_module[f"stages.{i}"].values()))
        else:
            rows[_row_of(child)][1] += _int(sum(by_module[child].values()))
    for op, macs in root_only.items():
        if macs:
            if op not in _ROW_OF_ROOT_OP:
                raise RuntimeError(f"Network runs {macs} MACs of {op!r} outside any submodule; "
                                   "mixnas.complexity._ROW_OF_ROOT_OP must say which row they belong to")
            rows[_ROW_OF_ROOT_OP[op]][1] += _int(macs)
    params = sum(p.numel() for p in model.parameters())
    macs = _int(sum(by_module[""].values()))
    result = tuple(CostRow(name, p, m) for name, (p, m) in rows.items())
    if sum(r.params for r in result) != params or sum(r.macs for r in result) != macs:
        raise RuntimeError(f"per-stage rows do not add up to the totals ({params} params, {macs} MACs): {result}")
    return Complexity(arch.digest(), params, macs, result)


_RANDOM_INITS = frozenset({
    # in-place random fills of torch.Tensor
    "normal_", "uniform_", "exponential_", "geometric_", "log_normal_", "cauchy_", "bernoulli_", "random_",
    # torch.nn.init functions that dispatch through __torch_function__ (the others end in the fills above)
    "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "trunc_normal_",
})


class _LazyWeights(TorchFunctionMode):
    """While a model is built for counting: ``torch.empty`` allocates on the meta device (no memory, and
    ``torch.nn.init`` leaves meta tensors alone), and random initialisation is skipped: a no-op on meta
    tensors, ``zero_()`` on the few real ones (class tokens, position tables) so that rejection-sampling
    initialisers such as ``trunc_normal_`` still terminate. Everything else runs normally, so index
    tables and other buffers computed by a module keep their values."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty:
            return func(*args, **{**kwargs, "device": "meta"})
        if getattr(func, "__name__", "") in _RANDOM_INITS:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, Tensor):
                if not target.is_meta:
                    with torch.no_grad():
                        target.zero_()
                return target
        return func(*args, **kwargs)


def _fast_model(arch: ArchConfig) -> nn.Module:
    """``build_model(arch)`` without initialised weights, every float32 parameter a view of one zero block.

    Built under :class:`_LazyWeights`, then every float32 parameter becomes a view of one shared
    zero-filled block as large as the largest parameter (so a 60M-parameter model costs one small
    allocation instead of 240 MB of page faults and random numbers), and any other meta tensor becomes
    zeros. Tied parameters stay tied. Only shapes matter to the count.
    """
    with _LazyWeights():
        model = build_model(arch)
    params = [p for m in model.modules() for p in m._parameters.values() if p is not None]
    pool = torch.zeros(max((p.numel() for p in params if p.dtype == torch.float32), default=0))
    done: dict[int, Tensor] = {}

    def materialise(t: Tensor, parameter: bool) -> Tensor:
        if id(t) not in done:
            data = pool[:t.numel()].view(t.shape) if parameter and t.dtype == torch.float32 else t
            if data.is_meta:
                data = torch.zeros(t.shape, dtype=t.dtype)
            done[id(t)] = nn.Parameter(data, requires_grad=False) if parameter else data
        return done[id(t)]

    for m in model.modules():
        for name, t in list(m._parameters.items()):
            if t is not None:
                m._parameters[name] = materialise(t, True)
        for name, t in list(m._buffers.items()):
            if t is not None and t.is_meta:
                m._buffers[name] = materialise(t, False)
    return model


@contextlib.contextmanager
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _compute(arch: ArchConfig) -> Complexity:
    images = torch.zeros(1, arch.input.in_channels, arch.input.image_size, arch.input.image_size)
    with _one_thread():
        try:
            model = _fast_model(arch).eval()
            analysis = _analysis(model, (images,))
        except UnhandledOperatorError:
            raise
        except Exception as err:  # an exotic module the fast build cannot serve: build it for real
            log.debug("fast build or trace failed for %s (%r); building normally", arch.digest(), err)
            model = build_model(arch).eval()
            analysis = _analysis(model, (images,))
    return _breakdown(arch, model, analysis)


# -- cache -----------------------------------------------------------------------------------------------

_SCHEMA = 1
_MEMORY: dict[tuple[str, str], Complexity] = {}
_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$MIXNAS_CACHE/complexity``, else ``$XDG_CACHE_HOME/mixnas/complexity`` or ``~/.cache/mixnas/...``."""
    root = os.environ.get("MIXNAS_CACHE")
    if root:
        return Path(root).expanduser() / "complexity"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mixnas" / "complexity"


def clear_memory_cache() -> None:
    """Forget the in-process cache (the disk cache is untouched)."""
    _MEMORY.clear()


@functools.cache
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.cache
def _base_version() -> str:
    sources = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        sources.update(str(path.relative_to(_PACKAGE_DIR)).encode() + b"\0" + _file_hash(str(path)).encode())
    try:
        fvcore_version = metadata.version("fvcore")
    except metadata.PackageNotFoundError:
        fvcore_version = "unknown"
    return (f"schema-{_SCHEMA};mixnas-{__version__};src-{sources.hexdigest()[:16]};fvcore-{fvcore_version};"
            f"torch-{torch.__version__}")


@functools.cache
def _external_source_hash(cls: type) -> str | None:
    """A hash of the file defining a mixer class that lives outside mixnas (None for mixnas' own)."""
    source = inspect.getsourcefile(cls)
    if not source or Path(source).resolve().is_relative_to(_PACKAGE_DIR):
        return None
    return _file_hash(source)[:16]


def _handle_tag(macs: ShapeHandle | None) -> str:
    """What a registered operator's count depends on: ``free``, or its handle's name and source file hash."""
    if macs is None:
        return "free"
    try:
        source = _external_source_hash(macs)
    except TypeError:  # a built-in function: no source file
        source = None
    return f"{getattr(macs, '__qualname__', type(macs).__name__)}@{source or 'builtin'}"


def _cache_version(arch: ArchConfig) -> str:
    """The base version, plus the source hash of mixers used by ``arch`` that live outside mixnas, and of the
    operator handles plugins registered (a changed handle is a changed count)."""
    extra = {_external_source_hash(get_mixer(role, spec.name).cls)
             for stage in arch.stages
             for role, spec in (("token", stage.token_mixer), ("channel", stage.channel_mixer))}
    ops = "".join(f";op-{op}-{_handle_tag(macs)}" for op, macs in sorted(_PLUGIN_OPS.items()))
    return _base_version() + "".join(f";ext-{h}" for h in sorted(extra - {None})) + ops


def _cache_file(digest: str, version: str) -> Path:
    return cache_dir() / f"{digest}-{hashlib.sha256(version.encode()).hexdigest()[:12]}.json"


def _read_disk(digest: str, version: str) -> Complexity | None:
    path = _cache_file(digest, version)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("cache_version") != version:
            raise ValueError("written by another version")
        result = Complexity.from_dict(data["complexity"])
        if result.digest != digest:
            raise ValueError(f"holds digest {result.digest}")
        return result
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        log.warning("ignoring unreadable complexity cache file %s (%s); recomputing", path, err)
        return None


def _write_disk(result: Complexity, version: str) -> None:
    path = _cache_file(result.digest, version)
    text = json.dumps({"cache_version": version, "complexity": result.to_dict()}, indent=1)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{result.digest}-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as err:
        log.warning("could not write the complexity cache file %s: %s", path, err)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def complexity(arch: ArchConfig, *, cache: bool = True) -> Complexity:
    """Parameters and MACs of ``arch`` at batch size 1 and its input size, with a per-stage breakdown.

    Cached in memory and on disk by ``arch.digest()`` and the cache version (see the module docstring);
    a memory hit returns the same object. ``cache=False`` neither reads nor writes any cache.
    """
    if not isinstance(arch, ArchConfig):
        raise TypeError(f"complexity takes an ArchConfig, got {type(arch).__name__}")
    if not cache:
        return _compute(arch)
    digest, version = arch.digest(), _cache_version(arch)
    key = (version, digest)
    result = _MEMORY.get(key)
    if result is None:
        result = _read_disk(digest, version)
        if result is None:
            result = _compute(arch)
            _write_disk(result, version)
        _MEMORY[key] = result
    return result
