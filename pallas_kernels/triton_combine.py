"""One-launch combine of the split-K partials of the LongFlow decode kernel (Pallas, Triton).

The split kernel (``triton_decode``) leaves, per (sequence, KV head, split):
the unnormalised output and the running softmax max ``m`` / sum ``l`` of each
query head, and per slot and query head ``exp(logit - m_tile) * ||v||_1``
(fp32, or bf16 for bf16 inputs) together with the per-tile max ``m_tile`` it
was taken against.  (With one split per row it writes the normalised output
itself instead of the per-split one, and this kernel passes it through.)  This
kernel merges them in fp32, exactly up to that storage rounding, into

* the attention output ``sum_s exp(m_s - M) o_s / L`` (``M = max_s m_s``,
  ``L = sum_s exp(m_s - M) l_s``: the usual flash-decoding merge), when there
  are several splits;
* the importance ``sum_h exp(m_tile[h] - M[h]) / L[h] * stored[h, slot]``
  divided by ``heads * head_dim``;
* per chunk of slots, the minimum eviction key and its lowest index (key -1 for
  invalid slots, as in ``xla.select_eviction_slot``); with one chunk that is
  the eviction slot itself.  With several chunks, each chunk program bumps a
  per-row counter after storing its minimum (an acquire-release atomic); the
  program that finds itself last reduces the chunk minima of its row (lowest
  chunk on ties, so lowest slot overall).  The split kernel zeroes the counter,
  so no extra launch is needed for it.

It replaced ~5 XLA fusions (40-80 us, most of the time at small shapes); the
counter replaced the last two (an argmin over chunk minima), which cost ~10 us
of host dispatch at batch 1 (benchmarks/NOTES.md).

Grid ``(batch, outputs, programs)``: ``outputs`` is 1 (importance summed over
all heads) or ``kv_heads`` (``per_kv_head``); with several splits the first
``rows // group`` programs (one per KV head of the output group) each merge that
KV head's output, and the remaining ones (all of them, with one split) each merge the
importance of one slot chunk.  The jobs are ``pl.when`` branches on the
program index, so one launch does everything.  An importance program keeps a
running minimum per lane, reduced once at its end.  Each step sums its tiles'
partials over the query-head rows in one of two ways (the caller's
``row_loop``, ``plan_combine``): the "axis" sum (the default) loads
``[tiles, rows, block_k]`` and reduces the middle axis, with the next step's
loads issued before the current step's
arithmetic (a software pipeline through the loop carry: Triton does not
pipeline these loads); the "row loop" loads ``[tiles, block_k]`` once per row
and accumulates elementwise, so no value crosses lanes (an option: faster in
runs 72-76, slower in runs 77-80, and 1.7-2.2x slower than the 2-warp axis
sum in run 94, benchmarks/NOTES.md).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels import _triton_compat as _compat
from pallas_kernels._validation import is_bool as _is_bool
from pallas_kernels._validation import is_int as _is_int
from pallas_kernels.xla import MASK_VALUE as _MASK_VALUE

_NO_SLOT = jnp.iinfo(jnp.int32).max  # a lane or chunk that has seen no in-range slot yet
# One loop step loads STEP_ELEMS partials (rows x slots) and, software-pipelined,
# already the next step's.  The combine is latency-bound (run 84's profile: 4 programs of
# 4 warps per SM, DRAM 48%), and what counts is independent programs per SM: run 88's
# 8 programs of 2 warps x 2048 beat 4 of 4 warps x 4096, the same partials in flight
# per SM (each program's chunk loop is one serial chain of loads).  GPU time, same
# lease each: 4 warps / 8192 against 8 warps / 16384 (runs 10-40): 30.5 vs 35.2 us at
# 128 x 8192 (run 41); 4 warps / 4096 against 4 warps / 8192: 29.1 vs 31.6 us (runs 85-86);
# 2 warps / 2048 at 8 programs per SM against 4 warps / 4096 at 4 (runs 88-89): 23.4-23.8
# vs 28.8-29.2 us at 128 x 8192, 8.7-9.0 vs 11.7-11.9 at 32 x 8192, 84.6 vs 104.5 at
# 128 x 32768, 3.9 vs 4.1 at 8 x 2048, 3.0 vs 3.4 at 1 x 1024; 1 warp at 16 per SM, 1024-
# partial steps, 12 per SM and 4 warps / 2048 were each equal or slower.
NUM_WARPS = 2  # the combine's default warps per program
# Target partials per importance step of the axis row sum (measured at head_dim 128, 64-slot
# tiles); a step is at least one tile, rows_p x block_k, when that is larger.
STEP_ELEMS = 2048
ROW_LOOP_STEP_ELEMS = 16384  # ... and of the row loop (run 72: faster than 32768; run 94, 2 warps: 39.7 us vs 46.5 for 8192)
OUTPUT_STEP_ELEMS = 8192  # partial outputs per step of the output merge (as measured in runs 41-89)
_MAX_LOOP_ROWS = 64  # rows unrolled in one row-loop step at most
_MAX_STEP_SLOTS = 1024
# Combine programs resident at once: the default KernelConfig.combine_programs, the
# round size of the chunk-count model.  8 per SM of the H200's 132 for 2-warp programs
# (runs 88-89: 12 per SM was 0.7 us slower at 128 x 8192); with 4 warps, 4 per SM was
# best (run 82: 31.6 vs 32.3 us for 3 per SM at 128 x 8192, 12.0 vs 14.1 at 32 x 8192).
TARGET_PROGRAMS = 8 * 132
_MAX_CHUNKS = 128  # the last chunk of a row reduces all chunk minima in one load

_load, _store, _next_pow2 = _compat.load, _compat.store, _compat.next_pow2


@dataclasses.dataclass(frozen=True)
class CombinePlan:
    """Static launch shape of the combine (see ``plan_combine``)."""

    rows: int  # query heads per output group (q_heads, or group if per_kv_head)
    group: int  # query heads per KV head
    tiles_per_step: int  # split-kernel tiles merged per loop step (power of two)
    steps_per_chunk: int
    num_chunks: int
    splits_per_step: int  # splits merged per loop step of the output merge (power of two)
    merge_outputs: bool = True  # False: the split kernel wrote the final output (one split)
    row_loop: bool = False  # importance row sum: a loop over rows (True) or over the axis

    @property
    def row_blocks(self) -> int:  # output-merge programs: one per KV head of the group, or none
        return self.rows // self.group if self.merge_outputs else 0

    @property
    def programs(self) -> int:  # output jobs first, then one program per importance chunk
        return self.row_blocks + self.num_chunks


def check_row_loop(name: str, row_loop) -> None:
    """Raises ValueError naming ``name`` unless ``row_loop`` is None, True or False."""
    if row_loop is not None and not _is_bool(row_loop):
        raise ValueError(f"{name} must be None, True or False, got {row_loop!r}")


def check_step_elems(name: str, step_elems) -> None:
    """Raises ValueError naming ``name`` unless ``step_elems`` is None or a power of two >= 256."""
    if step_elems is not None and (not _is_int(step_elems) or step_elems < 256
                                   or step_elems & (step_elems - 1)):
        raise ValueError(f"{name} must be a power of two >= 256, got {step_elems!r}")


def plan_combine(batch: int, outputs: int, rows: int, group: int, num_tiles: int,
                 block_k: int, head_dim: int, *, target_programs: int = TARGET_PROGRAMS,
                 merge_outputs: bool = True, step_elems: int | None = None,
                 row_loop: bool | None = None) -> CombinePlan:
    """Chooses the combine's row-sum method, step sizes and chunk count.

    The importance merge of each of the ``batch * outputs`` rows (``num_tiles``
    tiles that hold slots) is cut into chunks of whole loop steps, as many as
    minimise the modelled time when ``target_programs`` programs run at once
    (``_compat.splits_by_wave_model``: rounds x (steps per chunk + 1)).  The
    output-merge programs of rows with several splits share the grid but are
    not counted: they are short (one pass over the splits' outputs).  A row of one chunk writes its eviction
    slot directly; with several, the last chunk to finish reduces the chunk
    minima (atomic counter).  Run 43 (GPU time, benchmarks/NOTES.md; then 396
    programs and 8192-partial steps): against run 41's rule (one chunk up to 8
    steps, else ``ceil(528 / rows)`` chunks) the model gave 3 instead of 5 chunks
    per row at 128 x 8192 (one round: 30.0 -> 25.9 us) and 8 chunks of one step
    instead of one of 8 at 8 x 2048 (8.7 -> 3.9 us).  With today's defaults
    (1056 programs, 2048-partial steps) it plans 8 chunks of 16 steps at
    128 x 8192 and 32 one-step chunks at 8 x 2048.

    Row sum: a step sums ``rows`` query heads.  The "axis" method (``row_loop``
    None or False) loads ``[tiles, rows, block_k]`` and sums the middle axis
    (shuffles and a shared-memory round per step; ``STEP_ELEMS`` partials per
    step); the "row loop" (True, at most ``_MAX_LOOP_ROWS`` rows) loads
    ``[tiles, block_k]`` once per real row and sums elementwise (no cross-lane
    traffic, but a longer step: ``ROW_LOOP_STEP_ELEMS``).  The row loop was the
    faster in runs 72-76 where chunks run several steps (28.4-29.0 vs 31.7 us at
    128 x 8192, 11.3 vs 14.1 us at 32 x 8192) and the slower in every lease of
    runs 77-80 with the same SASS offline (65.7 vs 32.2 us, 26.0 vs 14.0 us;
    benchmarks/NOTES.md); the cause is not known, so the axis sum is the
    default and the row loop an option.  Against the 2-warp axis sum of runs
    88-89 it is slower still (run 94: 39.7 vs 23.5 us, 19.5 vs 9.0 us).
    ``step_elems`` (None = the method's default) overrides the step size.

    Raises:
      ValueError: ``row_loop`` not None / True / False, or True with more than
        ``_MAX_LOOP_ROWS`` rows (each is an unrolled load per step);
        ``step_elems`` not None or a power of two >= 256.
    """
    check_row_loop("combine_row_loop", row_loop)
    check_step_elems("combine_step_elems", step_elems)
    if row_loop and rows > _MAX_LOOP_ROWS:
        raise ValueError(f"combine_row_loop=True unrolls one load per query-head row and allows "
                         f"at most {_MAX_LOOP_ROWS} rows, got {rows}: use None or False")

    def build(elems: int, loop: bool) -> CombinePlan:
        rows_p = _next_pow2(rows)
        tiles_per_step = max(1, min(elems // rows_p, _MAX_STEP_SLOTS) // block_k)
        tiles_per_step = min(tiles_per_step, _next_pow2(num_tiles))
        total_steps = -(-num_tiles // tiles_per_step)
        num_chunks = _compat.splits_by_wave_model(batch * outputs, total_steps, target_programs,
                                                  _MAX_CHUNKS)
        steps_per_chunk = -(-total_steps // num_chunks)
        num_chunks = -(-total_steps // steps_per_chunk)
        group_p, head_dim_p = _next_pow2(group), _next_pow2(head_dim)
        splits_per_step = max(1, OUTPUT_STEP_ELEMS // (group_p * head_dim_p))  # fixed step
        return CombinePlan(rows=rows, group=group, tiles_per_step=tiles_per_step,
                           steps_per_chunk=steps_per_chunk, num_chunks=num_chunks,
                           splits_per_step=splits_per_step, merge_outputs=merge_outputs,
                           row_loop=loop)

    row_loop = bool(row_loop)  # None: the axis sum
    return build(step_elems or (ROW_LOOP_STEP_ELEMS if row_loop else STEP_ELEMS), row_loop)


def _softmax_stats(m_ref, l_ref, row0, rows_p, row_ok, num_splits):
    """Global max ``M`` and ``1 / L`` over splits for ``rows_p`` rows from ``row0``."""
    ns_p = _next_pow2(num_splits)
    mask = row_ok[:, None] & (jnp.arange(ns_p) < num_splits)[None, :]
    m = _load(m_ref.at[pl.ds(row0, rows_p), pl.ds(0, ns_p)], mask=mask, other=_MASK_VALUE)
    l = _load(l_ref.at[pl.ds(row0, rows_p), pl.ds(0, ns_p)], mask=mask, other=0.0)
    m_glob = jnp.max(m, axis=1)
    l_glob = jnp.sum(jnp.exp(m - m_glob[:, None]) * l, axis=1)
    return m_glob, 1.0 / jnp.maximum(l_glob, 1e-30)  # the XLA contract's guard


def _merge_output(m_ref, l_ref, o_ref, out_ref, *, block, plan: CombinePlan, num_splits,
                  head_dim):
    """Output rows of KV head ``block`` of the group: ``sum_s exp(m_s - M) o_s / L``."""
    group_p, head_dim_p = _next_pow2(plan.group), _next_pow2(head_dim)
    row0 = block * plan.group
    row_ok = jnp.arange(group_p) < plan.group
    col_ok = jnp.arange(head_dim_p) < head_dim
    m_glob, inv_l = _softmax_stats(m_ref, l_ref, row0, group_p, row_ok, num_splits)
    sps = min(plan.splits_per_step, _next_pow2(num_splits))

    def body(j, acc):
        split_ok = j * sps + jnp.arange(sps) < num_splits
        mask2 = row_ok[:, None] & split_ok[None, :]
        m = _load(m_ref.at[pl.ds(row0, group_p), pl.ds(j * sps, sps)], mask=mask2,
                  other=_MASK_VALUE)
        w = jnp.where(mask2, jnp.exp(m - m_glob[:, None]), 0.0)  # [group_p, sps]
        o = _load(o_ref.at[pl.ds(row0, group_p), pl.ds(j * sps, sps), pl.ds(0, head_dim_p)],
                  mask=mask2[:, :, None] & col_ok[None, None, :], other=0.0)
        return acc + jnp.sum(w[:, :, None] * o, axis=1)

    acc = jax.lax.fori_loop(0, -(-num_splits // sps), body,
                            jnp.zeros((group_p, head_dim_p), jnp.float32))
    _store(out_ref.at[pl.ds(row0, group_p), pl.ds(0, head_dim_p)],
           (acc * inv_l[:, None]).astype(out_ref.dtype), mask=row_ok[:, None] & col_ok[None, :])


def _merge_importance(m_ref, l_ref, imp_ref, mt_ref, valid_ref, imp_out_ref, cmin_ref, cidx_ref,
                      count_ref, slot_ref, *, layer, chunk, plan: CombinePlan, num_splits,
                      num_tiles, block_k, slots, norm, barrier):
    """Importance of slot chunk ``chunk``; the row's eviction slot from the last chunk done."""
    tps = plan.tiles_per_step
    step_slots = tps * block_k
    steps = plan.steps_per_chunk

    def fold_step(i, imp, ok, lane_key, lane_idx):
        """Stores step ``i``'s importance ``[step_slots]`` and folds it into the running minima."""
        tile0 = (chunk * steps + i) * tps
        slot = tile0 * block_k + jnp.arange(step_slots)
        in_range = slot < slots
        _store(imp_out_ref.at[pl.ds(tile0 * block_k, step_slots)], imp, mask=in_range)
        # As jnp.argmin in xla.select_eviction_slot: a NaN importance (non-finite inputs)
        # ranks first, so the slot stays in range.
        key = jnp.where(in_range, jnp.where(ok, jnp.where(imp == imp, imp, -jnp.inf), -1.0),
                        jnp.inf)
        # Elementwise running minimum: no cross-thread reduction per step (one at the end).
        # Strict: a lane's earlier steps hold its lower slots.  A lane's first in-range
        # slot always enters, so a row whose importances are all +inf (|v|_1 overflowing
        # fp32) still gets an in-range slot, the lowest, as jnp.argmin gives.
        better = (key < lane_key) | (in_range & (lane_idx == _NO_SLOT))
        return jnp.where(better, key, lane_key), jnp.where(better, slot, lane_idx)

    def load_valid(i):
        tile0 = (chunk * steps + i) * tps
        slot = tile0 * block_k + jnp.arange(step_slots)
        return _load(valid_ref.at[layer, pl.ds(tile0 * block_k, step_slots)],
                     mask=(slot < slots) & (i < steps), other=False)

    def tiles_ok(i):
        tile0 = (chunk * steps + i) * tps
        return (tile0 + jnp.arange(tps) < num_tiles) & (i < steps), tile0

    if plan.row_loop:
        # Per step, one [tps, block_k] load per real row, summed elementwise: no reduction
        # across lanes (the sum over the middle axis of a [tps, rows, block_k] load crosses
        # lanes and warps).  Faster in run 72 (128 x 8192: 28.4 vs 31.9 us), slower in
        # runs 77-80 (65.7 vs 32.2 us) and against the 2-warp axis sum (run 94: 39.7 vs
        # 23.5 us): an option, not the default (plan_combine).
        one_row = jnp.ones((1,), jnp.bool_)
        row_stats = [_softmax_stats(m_ref, l_ref, r, 1, one_row, num_splits)
                     for r in range(plan.rows)]  # ([1] max, [1] 1 / L) per row

        def body(i, carry):
            tile_ok, tile0 = tiles_ok(i)
            imp = jnp.zeros((tps, block_k), jnp.float32)
            for r, (m_glob, inv_l) in enumerate(row_stats):
                m_tile = _load(mt_ref.at[pl.ds(tile0, tps), pl.ds(r, 1)], mask=tile_ok[:, None],
                               other=_MASK_VALUE)
                e = _load(imp_ref.at[pl.ds(tile0, tps), jnp.int32(r), pl.ds(0, block_k)],
                          mask=tile_ok[:, None], other=0)  # stored dtype
                imp = imp + e.astype(jnp.float32) * (jnp.exp(m_tile - m_glob) * (inv_l * norm))
            return fold_step(i, imp.reshape(step_slots), load_valid(i), *carry)
    else:
        rows_p = _next_pow2(plan.rows)
        row_ok = jnp.arange(rows_p) < plan.rows
        m_glob, inv_l = _softmax_stats(m_ref, l_ref, 0, rows_p, row_ok, num_splits)
        row_w = jnp.where(row_ok, inv_l * norm, 0.0)  # padding rows contribute nothing

        def load_step(i):
            """Step ``i``'s tile maxima, partials and slot validity (masked past the chunk)."""
            tile_ok, tile0 = tiles_ok(i)
            # Tile-major partials: [tps, rows_p] maxima and [tps, rows_p, block_k] partials.
            mask2 = tile_ok[:, None] & row_ok[None, :]
            m_tile = _load(mt_ref.at[pl.ds(tile0, tps), pl.ds(0, rows_p)], mask=mask2,
                           other=_MASK_VALUE)
            e = _load(imp_ref.at[pl.ds(tile0, tps), pl.ds(0, rows_p), pl.ds(0, block_k)],
                      mask=mask2[:, :, None], other=0)  # stored dtype
            return m_tile, e, load_valid(i)

        def body(i, carry):
            # Software pipeline: step i + 1's loads are issued before step i's arithmetic, so
            # their latency overlaps it (Triton does not pipeline these loads itself).
            lane_key, lane_idx, m_tile, e, ok = carry
            upcoming = load_step(i + 1)
            w = jnp.exp(m_tile - m_glob[None, :]) * row_w[None, :]  # [tps, rows_p]
            imp = jnp.sum(e.astype(jnp.float32) * w[:, :, None], axis=1).reshape(step_slots)
            return (*fold_step(i, imp, ok, lane_key, lane_idx), *upcoming)

    lanes = (jnp.full((step_slots,), jnp.inf, jnp.float32),
             jnp.full((step_slots,), _NO_SLOT, jnp.int32))
    carry = lanes if plan.row_loop else (*lanes, *load_step(0))
    lane_key, lane_idx, *_ = jax.lax.fori_loop(0, steps, body, carry)
    best_key = jnp.min(lane_key)
    best_idx = jnp.min(jnp.where(lane_key == best_key, lane_idx, _NO_SLOT))
    if plan.num_chunks == 1:
        _store(slot_ref, jnp.full((1,), best_idx, jnp.int32))
        return
    _store(cmin_ref.at[pl.ds(chunk, 1)], jnp.full((1,), best_key, jnp.float32))
    _store(cidx_ref.at[pl.ds(chunk, 1)], jnp.full((1,), best_idx, jnp.int32))
    if barrier:  # every thread's stores above happen before the release below
        pltriton.debug_barrier()
    done_before = pltriton.atomic_add(count_ref, (jnp.int32(0),), jnp.int32(1))  # acq_rel, GPU scope

    @pl.when(done_before == plan.num_chunks - 1)
    def _last_chunk_reduces_the_row():
        nc_p = _next_pow2(plan.num_chunks)
        ok = jnp.arange(nc_p) < plan.num_chunks
        # volatile: read what the other programs wrote, never a stale L1 line
        keys = _load(cmin_ref.at[pl.ds(0, nc_p)], mask=ok, other=jnp.inf, volatile=True)
        idxs = _load(cidx_ref.at[pl.ds(0, nc_p)], mask=ok, other=0, volatile=True)
        key_min = jnp.min(keys)
        # Chunks hold increasing slot ranges: the lowest index among the minima wins ties.
        slot = jnp.min(jnp.where(ok & (keys == key_min), idxs, _NO_SLOT))
        _store(slot_ref, jnp.full((1,), slot, jnp.int32))


def _combine_kernel(*refs, plan: CombinePlan, num_splits, num_tiles, block_k, slots, head_dim,
                    norm, barrier):
    if plan.merge_outputs:
        (layer_ref, m_ref, l_ref, o_ref, imp_ref, mt_ref, valid_ref, _count_in,
         out_ref, imp_out_ref, cmin_ref, cidx_ref, count_ref, slot_ref) = refs
    else:  # the split kernel wrote the output: no o partials in, no output out
        (layer_ref, m_ref, l_ref, imp_ref, mt_ref, valid_ref, _count_in,
         imp_out_ref, cmin_ref, cidx_ref, count_ref, slot_ref) = refs
        o_ref = out_ref = None
    # Read once here: interpret mode cannot evaluate program_id inside a branch.
    p = pl.program_id(2)
    layer = layer_ref[0]

    def output_job():
        _merge_output(m_ref, l_ref, o_ref, out_ref, block=p, plan=plan, num_splits=num_splits,
                      head_dim=head_dim)

    def importance_job():
        _merge_importance(m_ref, l_ref, imp_ref, mt_ref, valid_ref, imp_out_ref, cmin_ref,
                          cidx_ref, count_ref, slot_ref, layer=layer, chunk=p - plan.row_blocks,
                          plan=plan, num_splits=num_splits, num_tiles=num_tiles, block_k=block_k,
                          slots=slots, norm=norm, barrier=barrier)

    # Separate programs for the two jobs: the importance merge (the longer
    # one) never waits behind an output merge in the same program.
    if plan.merge_outputs:
        pl.when(p < plan.row_blocks)(output_job)
        pl.when(p >= plan.row_blocks)(importance_job)
    else:
        importance_job()


def combine_partials(o_part, m_part, l_part, imp_part, m_tile, valid, layer, counter, *,
                     block_k: int, slots: int, out_dtype, per_kv_head: bool, interpret: bool,
                     num_warps: int = NUM_WARPS, target_programs: int = TARGET_PROGRAMS,
                     step_elems: int | None = None, row_loop: bool | None = None):
    """Merges the split kernel's partials in one Pallas launch.

    Args:
      o_part: ``[batch, kv_heads, group, splits, head_dim]`` f32 unnormalised outputs,
        or ``[batch, kv_heads, group, head_dim]``: the final output (one split; the
        split kernel normalised it), passed through.
      m_part, l_part: ``[batch, kv_heads, group, splits]`` f32 running max / sum.
      imp_part: ``[tiles, batch, kv_heads, group, block_k]`` (tile-major) f32 or bf16
        ``exp(logit - m_tile) * ||v||_1`` (0 at invalid and padding slots);
        merged in fp32 either way.
      m_tile: ``[tiles, batch, kv_heads, group]`` f32 max used for each tile.
      valid: ``[layers, batch, slots]`` bool, True where the slot holds a token.
      layer: int32 ``[1]``, the layer of ``valid`` to use.
      counter: int32 ``[batch, kv_heads, 1]``, all zeros (the split kernel writes
        them): per-row count of finished importance chunks, updated in place.
      block_k: slots per tile of the split kernel.
      slots: real slot count (``<= tiles * block_k``).
      out_dtype: dtype of the attention output.
      per_kv_head: importance / slot per KV head instead of summed over heads.
      interpret: Pallas interpret mode (CPU tests).
      num_warps: warps per combine program.
      target_programs: combine programs resident at once, the round size from which
        ``plan_combine`` chooses each row's number of importance chunks.
      step_elems: partials (rows padded to a power of two x slots) per importance
        step; sets the tiles per step (None: the row-sum method's default,
        ``plan_combine``).
      row_loop: the importance row sum as a loop over rows (True) or over the
        loaded block's axis (False or None, the default).

    Raises:
      ValueError: a final (4-D) ``o_part`` not in ``out_dtype``; ``row_loop``
        not None / True / False, ``step_elems`` not None or a power of two
        >= 256, or ``row_loop=True`` with more than 64 query-head rows
        (``plan_combine``).

    Returns:
      ``(out [batch, q_heads, head_dim] out_dtype (o_part itself, reshaped, when it is
      already the final output), slot int32 [batch] or
      [batch, kv_heads], importance f32 [batch, slots] or [batch, kv_heads, slots])``.
    """
    merge_outputs = o_part.ndim == 5
    if not merge_outputs and o_part.dtype != jnp.dtype(out_dtype):
        raise ValueError(f"a final o_part must already be in out_dtype {jnp.dtype(out_dtype)}, "
                         f"got {o_part.dtype}")
    batch, kv_heads, group, num_splits = m_part.shape
    head_dim = o_part.shape[-1]
    num_tiles = m_tile.shape[0]  # incl. the split kernel's padding tiles past `slots`
    outputs = kv_heads if per_kv_head else 1
    rows = kv_heads * group // outputs
    # Chunks cover the tiles that hold slots, so none is padding only.
    plan = plan_combine(batch, outputs, rows, group, -(-slots // block_k), block_k, head_dim,
                        target_programs=target_programs, merge_outputs=merge_outputs,
                        step_elems=step_elems, row_loop=row_loop)
    # Free (row-major) reshapes: the rows of one output group are contiguous (in the
    # tile-major partials, within each tile).
    views = (m_part.reshape(batch, outputs, rows, num_splits),
             l_part.reshape(batch, outputs, rows, num_splits),
             o_part.reshape(batch, outputs, rows, num_splits, head_dim),
             imp_part.reshape(num_tiles, batch, outputs, rows, block_k),
             m_tile.reshape(num_tiles, batch, outputs, rows))
    if not merge_outputs:
        views = views[:2] + views[3:]

    def whole(shape):  # one block = the (batch, output) row of an array
        return pl.BlockSpec((None, None) + shape, lambda b, o, p: (b, o) + (0,) * len(shape))

    def tiles_first(shape):  # tile-major [tiles, batch, outputs, ...]: every tile of the row
        return pl.BlockSpec((shape[0], None, None) + shape[3:],
                            lambda b, o, p: (0, b, o) + (0,) * (len(shape) - 3))

    in_specs = [pl.BlockSpec((1,), lambda b, o, p: (0,))]
    in_specs += [whole(v.shape[2:]) for v in views[:-2]]  # m, l (and o)
    in_specs += [tiles_first(v.shape) for v in views[-2:]]  # partials, tile maxima
    in_specs.append(pl.BlockSpec((valid.shape[0], None, slots), lambda b, o, p: (0, b, 0)))
    count_spec = pl.BlockSpec((None, None, 1), lambda b, o, p: (b, o, 0))
    in_specs.append(count_spec)
    out_shape = [
        jax.ShapeDtypeStruct((batch, outputs, slots), jnp.float32),
        jax.ShapeDtypeStruct((batch, outputs, plan.num_chunks), jnp.float32),  # chunk min key
        jax.ShapeDtypeStruct((batch, outputs, plan.num_chunks), jnp.int32),  # its slot
    ]
    if merge_outputs:
        out_shape.insert(0, jax.ShapeDtypeStruct((batch, outputs, rows, head_dim), out_dtype))
    out_specs = [whole(s.shape[2:]) for s in out_shape]
    out_shape.append(jax.ShapeDtypeStruct(counter.shape, jnp.int32))  # updated in place
    out_specs.append(count_spec)
    out_shape.append(jax.ShapeDtypeStruct((batch, outputs, 1), jnp.int32))  # eviction slot
    out_specs.append(whole((1,)))
    kernel = functools.partial(
        _combine_kernel, plan=plan, num_splits=num_splits, num_tiles=num_tiles, block_k=block_k,
        slots=slots, head_dim=head_dim, norm=1.0 / (rows * head_dim),
        barrier=not interpret)  # interpret mode runs programs one after another
    results = pl.pallas_call(
        kernel,
        grid=(batch, outputs, plan.programs),
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        input_output_aliases={len(in_specs) - 1: len(out_shape) - 2},
        compiler_params=pltriton.CompilerParams(num_warps=num_warps, num_stages=2),
        interpret=interpret,
        name="longflow_decode_combine",
    )(layer, *views, valid, counter)
    importance, _, _, _, slot = results[-5:]
    out = results[0] if merge_outputs else o_part

    slot = slot[..., 0]
    out = out.reshape(batch, kv_heads * group, head_dim)
    if not per_kv_head:
        slot, importance = slot[:, 0], importance[:, 0]
    return out, slot, importance
