"""LongFlow decode attention as a Mosaic (TPU) Pallas kernel.

One decode query per sequence attends over a fixed buffer of ``slots`` cached
K/V entries; besides the attention output we need LongFlow's per-slot
importance (arXiv 2603.11504, Sec. 3: sum over query heads of
``p[h, s] * ||v[kv(h), s]||_1``, divided by ``q_heads * head_dim``) and the
slot to evict next.  The contract is :func:`pallas_kernels.xla.longflow_attention_xla`.

Kernel layout (grid ``(batch, kv_heads, slot_blocks)``, last axis "arbitrary"):

* Each grid cell reads one ``[block_slots, head_dim]`` block of K and of V for
  one KV head and serves that head's whole query group at once (the group is
  the M dim of both dots), so K and V are read exactly once.
* Flash-decoding: the running max ``m``, denominator ``l`` and unnormalised
  output ``acc`` live in VMEM scratch and are rescaled online.
* Exact importance needs each head's *final* ``m`` and ``l``, which are only
  known after the last block.  The masked fp32 logits of every block (and each
  slot's ``||v||_1``) are therefore kept in VMEM scratch; at the last block the
  kernel turns them into exact probabilities and writes the group-summed
  importance.  Beyond K and V, HBM traffic is that ``[slots]`` fp32 row per KV
  head plus the int32 validity row read per KV head: 8 bytes per slot vs
  ``2 * head_dim * itemsize`` for K+V, i.e. <= 3.2% (bf16, head_dim 64).
* Blocks whose slots are all invalid (e.g. left padding) skip compute, and
  their K/V DMA is redirected to an already-fetched block (scalar prefetch),
  so padding costs neither bandwidth nor FLOPs.
* Summing over KV heads, normalising and the argmin run in XLA over the small
  ``[batch, kv_heads, slots]`` partials.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from pallas_kernels._platform import require_kernel_platform
from pallas_kernels._validation import validate_decode_args
from pallas_kernels.xla import MASK_VALUE as _MASK_VALUE  # finite: never NaN
from pallas_kernels.xla import select_eviction_slot

_SUPPORTED_HEAD_DIMS = (64, 128, 256)
_SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
# The logits scratch grows with slots * group; refuse what cannot fit in VMEM
# (v7x has 64 MiB per core) rather than fail inside the TPU compiler.
_VMEM_BUDGET_BYTES = 48 * 1024 * 1024
_DEFAULT_SCOPED_VMEM_BYTES = 16 * 1024 * 1024

# Renamed across jax versions (TPUCompilerParams -> CompilerParams).
_CompilerParams = getattr(pltpu, "CompilerParams", None) or getattr(pltpu, "TPUCompilerParams")
# Block dim squeezed out of the kernel's view (``None`` in older jax).
_SQ = getattr(pl, "squeezed", None)


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def _slot_block_size(slots: int) -> int:
    """Slots per grid step: a lane multiple for real caches, one block for tiny ones."""
    if slots >= 512:
        return 512
    if slots >= 128:
        return 128
    # One block that spans the (padded) slot axis; 16 keeps bf16 sublane tiling.
    return _round_up(slots, 16)


def check_supported(q) -> None:
    """Raises ValueError unless the Mosaic kernel handles q's dtype and head_dim
    (shapes, GQA and ``valid`` are checked by ``_validation.validate_decode_args``)."""
    if q.shape[-1] not in _SUPPORTED_HEAD_DIMS:
        raise ValueError(f"mosaic kernel: head_dim must be one of {_SUPPORTED_HEAD_DIMS}, "
                         f"got {q.shape[-1]}")
    if jnp.dtype(q.dtype) not in _SUPPORTED_DTYPES:
        raise ValueError(f"mosaic kernel: q.dtype must be float32 or bfloat16, got {q.dtype}")


def _decode_kernel(src_block_ref, layer_ref, q_ref, k_ref, v_ref, valid_ref,
                   out_ref, imp_ref,
                   m_scr, l_scr, acc_scr, logits_scr, v_l1_scr,
                   *, scale, group, slots, block_slots, num_blocks, fp32_inputs):
    """One (batch, kv_head, slot_block) grid step.

    Refs (batch / kv-head dims squeezed):
      src_block_ref: SMEM int32 [batch * num_blocks]; == block index iff the
        block holds a valid slot (else it names the block whose DMA we reuse).
      layer_ref: SMEM int32 [1], the buffer layer (used by the K/V index maps).
      q_ref: [group_pad, head_dim]; k_ref, v_ref: [block_slots, head_dim];
      valid_ref: int32 [1, block_slots]; out_ref: [group_pad, head_dim];
      imp_ref: fp32 [num_blocks, 1, block_slots] (resident across the slot axis).
    Scratch: m, l fp32 [group_pad, 1]; acc fp32 [group_pad, head_dim];
      logits fp32 [num_blocks, group_pad, block_slots];
      v_l1 fp32 [num_blocks, 1, block_slots].
    Per-block buffers are indexed on their leading dim only: Mosaic handles
    dynamic leading-dim offsets, not dynamic lane offsets.
    """
    batch_idx = pl.program_id(0)
    block_idx = pl.program_id(2)
    group_pad, head_dim = q_ref.shape
    precision = lax.Precision.HIGHEST if fp32_inputs else lax.Precision.DEFAULT

    @pl.when(block_idx == 0)
    def _init():
        m_scr[...] = jnp.full(m_scr.shape, _MASK_VALUE, jnp.float32)
        l_scr[...] = jnp.zeros(l_scr.shape, jnp.float32)
        acc_scr[...] = jnp.zeros(acc_scr.shape, jnp.float32)

    has_valid = src_block_ref[batch_idx * num_blocks + block_idx] == block_idx

    @pl.when(has_valid)
    def _attend():
        q = q_ref[...]
        k = k_ref[...]
        v = v_ref[...]
        if slots % block_slots:
            # The last block reads past the end of the cache: those rows are
            # unspecified memory (maybe NaN), and 0 * NaN would poison acc.
            row = block_idx * block_slots + lax.broadcasted_iota(jnp.int32, v.shape, 0)
            v = jnp.where(row < slots, v, jnp.zeros_like(v))
        logits = lax.dot_general(q, k, (((1,), (1,)), ((), ())), precision=precision,
                                 preferred_element_type=jnp.float32) * scale
        mask = jnp.broadcast_to(valid_ref[...] != 0, logits.shape)
        logits = jnp.where(mask, logits, _MASK_VALUE)
        logits_scr[block_idx] = logits

        m_prev = m_scr[...]
        m_next = jnp.maximum(m_prev, jnp.max(logits, axis=1, keepdims=True))
        exp_logits = jnp.where(mask, jnp.exp(logits - m_next), 0.0)
        rescale = jnp.exp(m_prev - m_next)
        l_scr[...] = rescale * l_scr[...] + jnp.sum(exp_logits, axis=1, keepdims=True)
        probs_for_v = exp_logits if fp32_inputs else exp_logits.astype(v.dtype)
        acc_scr[...] = rescale * acc_scr[...] + lax.dot_general(
            probs_for_v, v, (((1,), (0,)), ((), ())), precision=precision,
            preferred_element_type=jnp.float32)
        m_scr[...] = m_next

        # ||v||_1 per slot as a lane-major row: a tiny matmul with ones avoids
        # a sublane->lane transpose of the [block_slots, 1] column sum.
        ones = jnp.ones((8, head_dim), v.dtype)
        v_l1 = lax.dot_general(ones, jnp.abs(v), (((1,), (1,)), ((), ())), precision=precision,
                               preferred_element_type=jnp.float32)
        v_l1_scr[block_idx] = v_l1[0:1, :]

    @pl.when(jnp.logical_not(has_valid))
    def _skip():
        logits_scr[block_idx] = jnp.full((group_pad, block_slots), _MASK_VALUE, jnp.float32)
        v_l1_scr[block_idx] = jnp.zeros((1, block_slots), jnp.float32)

    @pl.when(block_idx == num_blocks - 1)
    def _finish():
        l = l_scr[...]
        head_row = lax.broadcasted_iota(jnp.int32, l.shape, 0)
        # Padded query rows and rows with no valid slot contribute nothing.
        inv_l = jnp.where((head_row < group) & (l > 0.0), 1.0 / jnp.where(l > 0.0, l, 1.0), 0.0)
        out_ref[...] = (acc_scr[...] * inv_l).astype(out_ref.dtype)
        m_final = m_scr[...]

        def importance_of_block(i, carry):
            probs = jnp.exp(logits_scr[i] - m_final) * inv_l
            group_prob = jnp.sum(probs, axis=0, keepdims=True)
            imp_ref[i] = group_prob * v_l1_scr[i]
            return carry

        lax.fori_loop(0, num_blocks, importance_of_block, 0)


def longflow_attention_mosaic(q, k, v, valid, *, scale: float, layer=None,
                              per_kv_head: bool = False, interpret=False):
    """LongFlow decode attention with fused importance, as a Mosaic TPU kernel.

    Same contract as :func:`pallas_kernels.xla.longflow_attention_xla`.

    Args:
      q: ``[batch, q_heads, head_dim]`` float32 or bfloat16; head_dim in
        {64, 128, 256}.
      k, v: ``[batch, kv_heads, slots, head_dim]`` in q's dtype; ``q_heads``
        a multiple of ``kv_heads`` (GQA).
      valid: ``[batch, slots]`` bool, True where the slot holds a token.
      scale: softmax scale, usually ``head_dim ** -0.5``.
      layer: None, or an int32 scalar (a traced one is clamped to
        ``[0, layers)``, a concrete one out of range raises); then k/v are the stacked ``[layers, batch, kv_heads,
        slots, head_dim]`` buffer and valid ``[layers, batch, slots]``; the
        layer reaches the K/V index maps by scalar prefetch, so nothing is copied.
      per_kv_head: keep importance and eviction slot per KV head.
      interpret: False for the compiled TPU kernel; True, or a
        ``pltpu.InterpretParams`` (e.g. NaN-filled out-of-bounds reads), to run
        it in the Pallas interpreter on any backend.

    Returns:
      out: ``[batch, q_heads, head_dim]`` in q's dtype (zeros for a row with
        no valid slot).
      slot: int32 ``[batch]`` (``[batch, kv_heads]`` if per_kv_head).
      importance: float32 ``[batch, slots]`` (``[batch, kv_heads, slots]`` if
        per_kv_head); 0 at invalid slots.

    Raises:
      ValueError: bad shapes, dtypes, ``scale`` or ``layer`` (as
        ``longflow_decode_attention``), a head_dim or dtype the kernel does not
        support (``check_supported``), or if the kernel's estimated VMEM
        (the per-KV-head logits scratch, ``ceil8(q_heads / kv_heads) * slots
        * 4`` bytes, plus ~96 bytes per slot for ``||v||_1`` and importance,
        plus the double-buffered K/V blocks) exceeds 48 MiB; without ``interpret``, a platform other than
        TPU (at once when eager, when the enclosing function is lowered under
        ``jit``; ``_platform.require_kernel_platform``).
    """
    validate_decode_args(q, k, v, valid, scale=scale, impl="mosaic", layer=layer)
    check_supported(q)
    if layer is None:  # one layer: a free leading axis of size 1
        k, v = k[None], v[None]
        layer = 0
    else:
        # Clamped like lax.dynamic_slice: the K/V index maps use it directly.
        layer = jnp.clip(jnp.asarray(layer, jnp.int32), 0, k.shape[0] - 1)
        valid = lax.dynamic_index_in_dim(valid, layer, 0, keepdims=False)  # small: [b, slots]
    layer = jnp.reshape(jnp.asarray(layer, jnp.int32), (1,))
    b, hq, d = q.shape
    hkv, slots = k.shape[2], k.shape[3]
    group = hq // hkv
    group_pad = _round_up(group, 8)
    block_slots = _slot_block_size(slots)
    num_blocks = -(-slots // block_slots)
    slots_pad = num_blocks * block_slots

    itemsize = jnp.dtype(q.dtype).itemsize
    vmem_bytes = (4 * group_pad * slots_pad            # logits scratch
                  + 4 * 8 * slots_pad * 3              # v_l1 scratch + 2 importance buffers
                  + 2 * 2 * block_slots * d * itemsize  # double-buffered K and V
                  + 4 * group_pad * (d + 256)          # acc, m, l
                  + 2 * 2 * group_pad * d * itemsize)  # q and out buffers
    if vmem_bytes > _VMEM_BUDGET_BYTES:
        raise ValueError(f"slots={slots} with a query group of {group} needs ~{vmem_bytes >> 20} MiB "
                         f"of VMEM (budget {_VMEM_BUDGET_BYTES >> 20} MiB); reduce slots")
    q = require_kernel_platform("mosaic", q, k, v, valid, layer, interpret=interpret)
    vmem_limit = None
    if vmem_bytes > _DEFAULT_SCOPED_VMEM_BYTES // 2:
        vmem_limit = min(_VMEM_BUDGET_BYTES + (8 << 20), 2 * vmem_bytes)

    q_grouped = q.reshape(b, hkv, group, d)
    if group_pad != group:
        q_grouped = jnp.pad(q_grouped, ((0, 0), (0, 0), (0, group_pad - group), (0, 0)))
    # Only the small mask is padded; K/V are read in place (the ragged last
    # block is masked in the kernel).
    valid_blocks = jnp.pad(valid, ((0, 0), (0, slots_pad - slots)))
    valid_i32 = valid_blocks.astype(jnp.int32).reshape(b, 1, slots_pad)

    # Per (batch, block): the block itself if it holds a valid slot, else the
    # latest earlier block that does (or the first one that does), so that
    # consecutive fully invalid blocks re-use one DMA'd block.
    block_has_valid = jnp.any(valid_blocks.reshape(b, num_blocks, block_slots), axis=-1)
    block_ids = jnp.arange(num_blocks, dtype=jnp.int32)
    last_valid = lax.cummax(jnp.where(block_has_valid, block_ids, -1), axis=1)
    first_valid = jnp.argmax(block_has_valid, axis=1).astype(jnp.int32)
    src_block = jnp.where(last_valid >= 0, last_valid, first_valid[:, None])
    # A row with no valid slot at all: mark block 0 as "compute" (it is fully
    # masked, so the result is still zeros) to keep the DMA index well defined.
    src_block = src_block.reshape(-1).astype(jnp.int32)

    kernel = functools.partial(
        _decode_kernel, scale=float(scale), group=group, slots=slots, block_slots=block_slots,
        num_blocks=num_blocks, fp32_inputs=q.dtype == jnp.float32)

    def kv_index(bi, hi, ji, src_ref, layer_ref):
        return layer_ref[0], bi, hi, src_ref[bi * num_blocks + ji], 0

    grid_spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=2,
        grid=(b, hkv, num_blocks),
        in_specs=[
            pl.BlockSpec((_SQ, _SQ, group_pad, d), lambda bi, hi, ji, *_: (bi, hi, 0, 0)),
            pl.BlockSpec((_SQ, _SQ, _SQ, block_slots, d), kv_index),
            pl.BlockSpec((_SQ, _SQ, _SQ, block_slots, d), kv_index),
            pl.BlockSpec((_SQ, 1, block_slots), lambda bi, hi, ji, *_: (bi, 0, ji)),
        ],
        out_specs=[
            pl.BlockSpec((_SQ, _SQ, group_pad, d), lambda bi, hi, ji, *_: (bi, hi, 0, 0)),
            pl.BlockSpec((_SQ, _SQ, num_blocks, 1, block_slots),
                         lambda bi, hi, ji, *_: (bi, hi, 0, 0, 0)),
        ],
        scratch_shapes=[
            pltpu.VMEM((group_pad, 1), jnp.float32),
            pltpu.VMEM((group_pad, 1), jnp.float32),
            pltpu.VMEM((group_pad, d), jnp.float32),
            pltpu.VMEM((num_blocks, group_pad, block_slots), jnp.float32),
            pltpu.VMEM((num_blocks, 1, block_slots), jnp.float32),
        ],
    )
    out_grouped, group_importance = pl.pallas_call(
        kernel,
        grid_spec=grid_spec,
        out_shape=[
            jax.ShapeDtypeStruct((b, hkv, group_pad, d), q.dtype),
            jax.ShapeDtypeStruct((b, hkv, num_blocks, 1, block_slots), jnp.float32),
        ],
        compiler_params=_CompilerParams(
            dimension_semantics=("parallel", "parallel", "arbitrary"),
            vmem_limit_bytes=vmem_limit),
        interpret=interpret,
    )(src_block, layer, q_grouped, k, v, valid_i32)

    out = out_grouped[:, :, :group, :].reshape(b, hq, d)
    # [b, hkv, slots]: importance summed over each KV head's query group.
    group_importance = group_importance.reshape(b, hkv, slots_pad)[:, :, :slots]
    if per_kv_head:
        importance = group_importance / (group * d)
        slot = select_eviction_slot(importance, valid[:, None, :])
    else:
        importance = jnp.sum(group_importance, axis=1) / (hq * d)
        slot = select_eviction_slot(importance, valid)
    return out, slot, importance
