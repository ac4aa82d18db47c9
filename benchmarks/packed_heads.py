"""Experiment (benchmark-only): the split kernel with several KV heads packed into the dot's 16 rows.

The default split kernel (``pallas_kernels.triton_decode``) pads one KV head's
query group (4 heads at 32/8) to the 16 rows Triton's dot needs, so 12 of the
16 rows of every logits / partial-importance tile are padding, and the
per-tile partial store (the whole ~10% the exact kernel loses to the
attention-only one, benchmarks/NOTES.md runs 25-29) converts and writes a
tile that is 3/4 padding.  Here one program takes ``pack = 16 // group`` KV
heads of one sequence: row ``r`` of the tile is query head ``r`` of the pack,
its logits come from its own KV head's K tile (one dot per KV head, rows
selected), and P @ V is summed the same way, so every row is real and one
store writes the partials of ``pack`` KV heads.  Smaller K/V tiles per head
(``block_k`` 16 or 32) keep the bytes loaded per iteration at the default's
32 KiB.

The outputs have exactly the default kernel's memory layout (a packed
``[batch, kv_heads / pack, 16, ...]`` array is the default
``[batch, kv_heads, group, ...]`` one), so ``triton_combine.combine_partials``
finishes the call unchanged.  bf16 only, ``head_dim`` a power of two,
``group * pack == 16``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels import _triton_compat as _compat
from pallas_kernels.triton_combine import combine_partials
from pallas_kernels.triton_decode import _MASK_VALUE, _splits_by_wave_model

_load, _store = _compat.load, _compat.store
ROWS = 16


def _packed_kernel(layer_ref, q_ref, k_ref, v_ref, valid_ref,
                   o_ref, m_ref, l_ref, imp_ref, mblk_ref, count_ref, *,
                   scale, group, pack, slots, block_k, blocks_per_split, split_len, pad_slots):
    split = pl.program_id(2)
    layer = layer_ref[0]
    f32 = jnp.float32

    @pl.when(split == 0)
    def _zero_combine_counters():
        _store(count_ref, jnp.zeros((pack, 1), jnp.int32))

    row_head = jnp.arange(ROWS) // group  # KV head (within the pack) of each row
    q = _load(q_ref)  # [16, head_dim]

    def body(i, carry):
        o, m, l = carry  # o^T [head_dim, 16]
        tile = pl.ds(i * block_k, block_k)
        if pad_slots:
            in_range = split * split_len + i * block_k + jnp.arange(block_k) < slots
            ok = _load(valid_ref.at[layer, tile], mask=in_range, other=False)
        else:
            ok = _load(valid_ref.at[layer, tile])
        logits = jnp.zeros((ROWS, block_k), f32)
        v_l1 = jnp.zeros((ROWS, block_k), f32)
        vs = []
        for h in range(pack):
            if pad_slots:
                kv_mask = jnp.broadcast_to(in_range[:, None], (block_k, q.shape[1]))
                k = _load(k_ref.at[layer, jnp.int32(h), tile, :], mask=kv_mask, other=0)
                v = _load(v_ref.at[layer, jnp.int32(h), tile, :], mask=kv_mask, other=0)
            else:
                k = _load(k_ref.at[layer, jnp.int32(h), tile, :])
                v = _load(v_ref.at[layer, jnp.int32(h), tile, :])
            logits_h = jax.lax.dot_general(q, k, (((1,), (1,)), ((), ())),
                                           preferred_element_type=f32)  # all rows, keep head h's
            logits = jnp.where((row_head == h)[:, None], logits_h, logits)
            v_l1 = jnp.where((row_head == h)[:, None],
                             jnp.sum(jnp.abs(v.astype(f32)), axis=1)[None, :], v_l1)
            vs.append(v)
        logits = jnp.where(ok[None, :], logits * scale, _MASK_VALUE)
        m_new = jnp.maximum(m, jnp.max(logits, axis=1))
        rescale = jnp.exp(m - m_new)
        e = jnp.where(ok[None, :], jnp.exp(logits - m_new[:, None]), 0.0)
        l = rescale * l + jnp.sum(e, axis=1)
        eb = e.astype(vs[0].dtype)
        o = rescale[None, :] * o
        for h in range(pack):  # o^T += V_h^T e_h^T, e_h = the rows of KV head h
            e_h = jnp.where((row_head == h)[:, None], eb, jnp.zeros_like(eb))
            o = o + jax.lax.dot_general(vs[h], e_h, (((0,), (1,)), ((), ())),
                                        preferred_element_type=f32)
        _store(imp_ref.at[:, tile], (e * v_l1).astype(imp_ref.dtype))
        _store(mblk_ref.at[:, pl.ds(i, 1)], m_new[:, None])
        return o, m_new, l

    head_dim = q.shape[1]
    o0 = jnp.zeros((head_dim, ROWS), f32)
    m0 = jnp.full((ROWS,), _MASK_VALUE, f32)
    o, m, l = jax.lax.fori_loop(0, blocks_per_split, body, (o0, m0, jnp.zeros((ROWS,), f32)))
    _store(o_ref, o.T)
    _store(m_ref, m)
    _store(l_ref, l)


def packed_partials(q, k, v, valid, layer, *, scale, block_k=16, num_splits=None,
                    num_warps=4, num_stages=2, programs_per_wave=528, interpret=False):
    """Split-kernel partials in the default kernel's layouts (see module docstring).

    q ``[batch, q_heads, head_dim]`` bf16; k, v ``[layers, batch, kv_heads, slots,
    head_dim]``; valid ``[layers, batch, slots]``; layer int32 ``[1]``.
    Returns ``(o, m, l, imp, m_tile, counter, blocks_per_split)``.
    """
    batch, q_heads, head_dim = q.shape
    layers, _, kv_heads, slots, _ = k.shape
    group = q_heads // kv_heads
    if ROWS % group or kv_heads % (ROWS // group):
        raise ValueError(f"packing needs group | 16 and kv_heads divisible by 16 / group; got "
                         f"group {group}, kv_heads {kv_heads}")
    pack = ROWS // group
    kvp = kv_heads // pack
    num_blocks = -(-slots // block_k)
    if num_splits is None:
        num_splits = _splits_by_wave_model(batch * kvp, num_blocks, wave=programs_per_wave)
    bps = -(-num_blocks // num_splits)
    ns = -(-num_blocks // bps)
    sl = bps * block_k
    f32 = jnp.float32
    kernel = functools.partial(
        _packed_kernel, scale=float(scale), group=group, pack=pack, slots=slots, block_k=block_k,
        blocks_per_split=bps, split_len=sl, pad_slots=ns * sl != slots)
    out_shape = [
        jax.ShapeDtypeStruct((batch, kvp, ROWS, ns, head_dim), f32),
        jax.ShapeDtypeStruct((batch, kvp, ROWS, ns), f32),
        jax.ShapeDtypeStruct((batch, kvp, ROWS, ns), f32),
        jax.ShapeDtypeStruct((batch, kvp, ROWS, ns * sl), q.dtype),
        jax.ShapeDtypeStruct((batch, kvp, ROWS, ns * bps), f32),
        jax.ShapeDtypeStruct((batch, kv_heads, 1), jnp.int32),
    ]
    in_specs = [
        pl.BlockSpec((1,), lambda b, j, s: (0,)),
        pl.BlockSpec((None, None, ROWS, head_dim), lambda b, j, s: (b, j, 0, 0)),
        pl.BlockSpec((layers, None, pack, sl, head_dim), lambda b, j, s: (0, b, j, s, 0)),
        pl.BlockSpec((layers, None, pack, sl, head_dim), lambda b, j, s: (0, b, j, s, 0)),
        pl.BlockSpec((layers, None, sl), lambda b, j, s: (0, b, s)),
    ]
    out_specs = [
        pl.BlockSpec((None, None, ROWS, None, head_dim), lambda b, j, s: (b, j, 0, s, 0)),
        pl.BlockSpec((None, None, ROWS, None), lambda b, j, s: (b, j, 0, s)),
        pl.BlockSpec((None, None, ROWS, None), lambda b, j, s: (b, j, 0, s)),
        pl.BlockSpec((None, None, ROWS, sl), lambda b, j, s: (b, j, 0, s)),
        pl.BlockSpec((None, None, ROWS, bps), lambda b, j, s: (b, j, 0, s)),
        pl.BlockSpec((None, pack, 1), lambda b, j, s: (b, j, 0)),
    ]
    o, m, l, imp, m_tile, counter = pl.pallas_call(
        kernel, grid=(batch, kvp, ns), in_specs=in_specs, out_specs=out_specs,
        out_shape=out_shape,
        compiler_params=pltriton.CompilerParams(num_warps=num_warps, num_stages=num_stages),
        name="longflow_decode_split_packed", interpret=interpret,
    )(layer, q.reshape(batch, kvp, ROWS, head_dim), k, v, valid)
    unpack = lambda x: x.reshape(batch, kv_heads, group, *x.shape[3:])  # noqa: E731  same memory
    return (unpack(o), unpack(m), unpack(l), unpack(imp), unpack(m_tile), counter, bps)


def packed_attention(q, k, v, valid, *, scale, block_k=16, num_splits=None, num_warps=4,
                     num_stages=2, programs_per_wave=528, kernel_only=False, interpret=False):
    """Full call (split + the library's combine) for one layer: ``(out, slot, importance)``."""
    layer = jnp.zeros((1,), jnp.int32)
    o, m, l, imp, m_tile, counter, _ = packed_partials(
        q, k[None], v[None], valid[None], layer, scale=scale, block_k=block_k,
        num_splits=num_splits, num_warps=num_warps, num_stages=num_stages,
        programs_per_wave=programs_per_wave, interpret=interpret)
    if kernel_only:
        return o, m, l, imp, m_tile, counter
    return combine_partials(o, m, l, imp, m_tile, valid[None], layer, counter, block_k=block_k,
                            slots=k.shape[2], out_dtype=q.dtype, per_kv_head=False, interpret=interpret)
