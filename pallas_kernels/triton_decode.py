"""Fused LongFlow flash-decoding kernel for NVIDIA GPUs (Pallas, Triton lowering).

One decode query per sequence attends over ``slots`` cached K/V entries and we
also need LongFlow's per-slot importance (arXiv 2603.11504, Sec. 3)::

    importance[s] = sum_h p[h, s] * ||v[kv(h), s]||_1 / (q_heads * head_dim)

Decode attention is memory bound (one query row per KV head group), so the
design goal is to read every K and V byte exactly once:

* grid ``(batch, kv_heads, splits)``: split-K over slots so that small batches
  still put work on all 132 SMs of an H200;
* each program loads a K/V tile once for the whole GQA query group: the
  group's query heads are packed into the M dimension of the dots (padded to
  16 rows, Triton's minimum for ``tt.dot``);
* P @ V is computed transposed (``o^T += V^T P^T``) so the V tile is the
  dot's register operand, from which ``||v_s||_1`` is taken too (as one
  more dot for bf16, below); with V as the shared-memory operand the extra
  use of the tile cost ~25% bandwidth on the H200 (benchmarks/NOTES.md,
  runs 2-3);
* online softmax inside a split; the split writes its unnormalised partial
  output, its running max ``m`` and sum ``l`` per query head (with one split
  per row, the usual case at large batch, it writes the normalised output
  itself and the combine merges only the importance);
* importance needs ``exp(logit[h, s] - M[h]) / L[h]`` with the *global*
  ``M, L``, a per-head rescale, so the kernel stores per slot and head
  ``exp(logit[h, s] - m_blk[h]) * ||v_s||_1`` together with the running max
  ``m_blk[h]`` (fp32) it used for that block.  The combine rescales them in
  fp32.  Those per-head partials must survive until the row's end (the
  global ``M, L`` are per head), so they are the kernel's main extra HBM
  traffic: ``group * itemsize`` bytes per slot and KV head, written once and
  read once by the combine, against ``2 * head_dim * itemsize`` bytes of K+V
  (the rest, ~0.3 % at the headline shape, is per-tile maxima, per-split
  outputs (none at one split, where the kernel writes the final output) and
  the importance row; benchmarks/RESULTS.md).
  They are stored tile-major, ``[tiles, batch, kv_heads, group, block_k]``:
  each tile's rows are one contiguous piece and all resident programs write
  into one advancing region.  About half of what the importance costs over
  attention-only code was these writes' DRAM traffic, not their instructions
  (run 66: the same stores kept in L2 made the kernel 4.2% faster), and the
  head-major layout ``[batch, kv_heads, group, slots]`` (4 scattered write
  streams per program) was 2.8% slower (runs 67-69, benchmarks/NOTES.md).
  They are stored in the input's precision (``KernelConfig.partial_dtype``):
  bf16 inputs keep bf16 partials, 8 B written + 8 B read per 512 B of K+V at
  group 4 and head_dim 128 (3.1 %; fp32 partials would be 6.25 %, over the
  5 % budget), and each importance term is then rounded once, a relative
  error <= 2**-8 (0.39 %, bf16 keeps 8 significant bits; device checks of run 16
  saw <= 0.37 %), 5x inside the bf16 tolerance (2e-2); fp32 inputs
  keep fp32 partials, so the fp32 importance is exact to fp32 rounding.
* ``||v_s||_1`` is, for bf16 inputs, one more tensor-core dot per tile,
  ``ones[group_p, head_dim_p] @ |v|^T`` (exact products, fp32 sum): an fp32 sum
  over head_dim on the CUDA cores (bf16 unpacking, adds, shuffles) made the
  tile loop 691 SASS instructions, the dot 470 (``KernelConfig.v_l1_dot``;
  the split kernel 8 us faster at 128 x 8192, run 77).

fp32 inputs with a query group of at most 8 (``_FMA_MAX_GROUP``) use the "fma"
body instead (larger fp32 groups keep "pvt" with full-precision dots): both products on the CUDA cores, one
query head of the group at a time, so a group of 3 does 3 rows of work, not
16 padded rows of IEEE-emulated fp32 dots (4x faster for SmolLM2's 9/3 heads,
benchmarks/NOTES.md run 6).  Its stores are the same, so one combine serves
both bodies.

The kernel reads the decoder's stacked ``[layers, batch, kv_heads, slots,
head_dim]`` buffer directly: every block spans the whole layer axis and the
program indexes it with the layer number loaded from a 1-element array
(Triton has no scalar prefetch), so a scan over layers copies no K/V.

The combine is one more small Pallas launch (``triton_combine``): global
``M, L``, output (with several splits), importance and the eviction slot with the tie and
invalid-slot rules of ``xla.select_eviction_slot``.  The split kernel also
zeroes the combine's per-row chunk counter (one int32 per sequence and KV
head), which saves a memset launch.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from pallas_kernels import _triton_compat as _compat
from pallas_kernels._platform import require_kernel_platform
from pallas_kernels._validation import is_bool as _is_bool
from pallas_kernels._validation import is_int as _is_int
from pallas_kernels._validation import validate_decode_args
from pallas_kernels.triton_combine import NUM_WARPS as _COMBINE_WARPS
from pallas_kernels.triton_combine import TARGET_PROGRAMS as _COMBINE_PROGRAMS
from pallas_kernels.triton_combine import check_row_loop as _check_row_loop
from pallas_kernels.triton_combine import check_step_elems as _check_step_elems
from pallas_kernels.triton_combine import combine_partials

# The XLA contract's finite mask value: a row with no valid slot gives exp(0) = 1 in the
# online softmax, which the kernel zeroes explicitly, never NaN.
from pallas_kernels.xla import MASK_VALUE as _MASK_VALUE

SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
MAX_HEAD_DIM = 256
MAX_GROUP = 64

# H200: 132 SMs.  The bf16 "pvt" body took 127-128 registers per thread, so 4
# programs of 4 warps fit on an SM (Nsight Compute, run 16: "Block Limit
# Registers 4", 25% occupancy; 128 in the offline compiles of runs 66-77);
# with ||v||_1 as a dot (v_l1_dot, the bf16 default since run 81) it takes 104,
# still 4 programs (5 would need <= 102): one wave is 528 programs.  The grid is sized
# in whole waves, because these programs all stream the same number of bytes:
# a last wave that is nearly empty runs as long as a full one at a fraction of
# the bandwidth (9 splits at batch 8 = 576 programs = 1.09 waves: 21% slower
# than 8 splits, benchmarks/NOTES.md run 17).
_NUM_SMS = 132
_PROGRAMS_PER_WAVE = 4 * _NUM_SMS
_MAX_AUTO_SPLITS = 128  # the combine reads every split's (m, l) of a row at once

_load, _store, _next_pow2 = _compat.load, _compat.store, _compat.next_pow2

# Kernel bodies (see KernelConfig.variant).  Slower exact bodies and the
# benchmark-only ablations of runs 21-34 (attention only, |v|_1 := 1, no store,
# ...) were removed after their runs; they live in git at commit 517af4c.
VARIANTS = ("pvt", "fma")
_FMA_MAX_GROUP = 8  # "fma" unrolls one pass per query head of the group
PARTIAL_DTYPES = ("float32", "bfloat16")
ALLOWED_NUM_WARPS = (1, 2, 4, 8, 16, 32)  # split kernel and combine


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Launch shape for one problem size (all static)."""

    block_k: int  # slots per loaded K/V tile (power of two, >= 16)
    blocks_per_split: int  # tiles streamed by one program
    num_splits: int  # programs per (batch, kv head)
    num_warps: int
    num_stages: int
    # Kernel body: "pvt" (the dot body, default for bf16 and for large groups:
    # P@V computed transposed, o^T += V^T P^T, so the V tile is the dot's A
    # operand and ||v||_1 is taken from the same tile; fastest on the H200,
    # benchmarks/NOTES.md run 3) or "fma" (default for fp32 with a group of
    # at most 8: no tensor-core dot, one query head at a time on the CUDA
    # cores; 4x faster than "pvt" for fp32 with 9/3 heads, run 6).
    variant: str = "pvt"
    # Storage dtype of the per-slot, per-query-head importance partials
    # ("float32" or "bfloat16"); the combine always accumulates in fp32.
    # plan_config picks the input's precision; a hand-built KernelConfig gets fp32.
    partial_dtype: str = "float32"
    # Combine programs resident at once, the round size of the model that cuts
    # each row's importance merge into slot chunks (triton_combine.plan_combine).
    combine_programs: int = _COMBINE_PROGRAMS
    # The combine's warps per program (2: runs 88-89's best), its importance
    # row sum (True: a loop over the query-head rows, False or None: a sum over
    # the loaded block's axis, triton_combine.plan_combine, runs 72-80 and 94) and
    # partials loaded per importance step (a power of two >= 256; None: the
    # row-sum method's default).
    combine_warps: int = _COMBINE_WARPS
    combine_row_loop: bool | None = None
    combine_step_elems: int | None = None
    # The "pvt" body's ||v||_1 per slot as a tensor-core dot
    # ones[group_p, head_dim] @ |v|^T (bf16 only: |v| and 1 are exact in bf16,
    # the sum fp32) instead of an fp32 sum over head_dim on the CUDA cores:
    # 470 instead of 691 SASS instructions per tile, 104 instead of 128
    # registers (offline compile), split kernel 8 us faster at 128 x 8192 and
    # 5% at 8 x 2048 (run 77).  plan_config turns it on for bf16 "pvt"; a
    # hand-built KernelConfig (fp32 by default) has it off.
    v_l1_dot: bool = False

    @property
    def split_len(self) -> int:
        """Slots one program streams: ``block_k * blocks_per_split``."""
        return self.block_k * self.blocks_per_split


def plan_config(batch: int, kv_heads: int, slots: int, head_dim: int, dtype,
                *, block_k: int | None = None, num_splits: int | None = None,
                num_warps: int | None = None, num_stages: int | None = None,
                variant: str | None = None,
                group: int | None = None, partial_dtype: str | None = None,
                combine_programs: int | None = None, combine_warps: int | None = None,
                combine_step_elems: int | None = None,
                combine_row_loop: bool | None = None,
                v_l1_dot: bool | None = None) -> KernelConfig:
    """Chooses kernel body, tile size, split count, warps and pipeline depth for the H200.

    Any argument given overrides the heuristic (used by the benchmark sweep),
    except that ``block_k`` is clamped to ``[16, slots rounded up to a power
    of two]`` and every split needs at least one tile: ``num_splits`` is capped
    at the number of ``block_k`` tiles and then lowered to the fewest splits
    of ``ceil(tiles / num_splits)`` tiles each (e.g. 4 asked, 64 slots in one
    64-slot tile -> 1; 10 asked for 16 tiles -> 8 of 2); read the returned
    config's ``num_splits``.
    Defaults (benchmarks/NOTES.md, runs 3-6), with ``head_dim_p`` = head_dim
    padded to a power of two >= 16: bf16 -> "pvt" with
    ``min(128, 16384 // (head_dim_p * 2))`` slots per tile (64 at head_dim 128),
    2 stages, 4 warps; fp32 with a query group (``group`` = q_heads / kv_heads,
    None = small) of at most 8 -> "fma" with ``min(64, 4096 // head_dim_p)``
    slots per tile, 1 stage, 4 warps (tiles at least 16 slots and at most
    ``slots`` rounded up to a power of two) (measured for groups 3-4; it unrolls one pass per
    query head, so large groups keep the dot body).  Split count: sized in
    whole waves of resident programs (``_splits_by_wave_model``; 13-26% faster
    than run 1-15's ``ceil(528 / (batch * kv_heads))`` at batch 8 and 32,
    benchmarks/NOTES.md run 17).  Importance partials are stored in the
    input's precision: bf16 for bf16, fp32 for fp32 (see the module docstring
    for the traffic and error this trades).  ``combine_programs`` (default 1056 = 8 per
    SM of 2 warps, runs 88-89) is the combine's resident programs per round, from which it chooses
    how many slot chunks each row's importance merge gets; ``combine_warps``
    (default 2), ``combine_row_loop`` (the importance row sum's method, None =
    ``triton_combine.plan_combine``'s default, the axis sum) and
    ``combine_step_elems`` (partials per importance step, None = the method's
    default) shape the combine's programs.  ``v_l1_dot`` computes ``||v||_1``
    on the tensor cores (``KernelConfig``; None = on for bf16 "pvt", run 77;
    True is refused for other bodies and dtypes).

    Raises:
      ValueError: a size that is not a positive integer (``head_dim`` up to
        256), a dtype other than float32/bfloat16, or an override out of range:
        ``block_k`` not a power of two >= 16, ``num_splits`` / ``num_stages`` /
        ``group`` / ``combine_programs`` < 1, ``num_warps`` not a power of two in
        [1, 32], an unknown ``variant`` or ``partial_dtype``, ``combine_warps``
        not a power of two in [1, 32], ``combine_step_elems`` not a power of
        two >= 256, ``combine_row_loop`` not None / True / False.  (A config
        with ``combine_row_loop=True`` is refused when the kernel is built if
        more than 64 query-head rows share one importance output: q_heads, or
        the group with ``per_kv_head``.)  ``v_l1_dot`` not None or a bool, or True
        without the "pvt" body and bfloat16 inputs.
    """
    _check_plan_args(batch=batch, kv_heads=kv_heads, slots=slots, head_dim=head_dim,
                     block_k=block_k, num_splits=num_splits, num_warps=num_warps,
                     num_stages=num_stages, group=group, combine_programs=combine_programs,
                     combine_warps=combine_warps, combine_step_elems=combine_step_elems,
                     combine_row_loop=combine_row_loop)
    try:
        dtype = jnp.dtype(dtype) if dtype is not None else repr(dtype)  # None: not float64
    except TypeError:
        dtype = repr(dtype)  # not a dtype at all: named in the error below
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {[str(d) for d in SUPPORTED_DTYPES]}, got {dtype}")
    itemsize = dtype.itemsize
    head_dim_p = max(16, _next_pow2(head_dim))
    if variant is None:
        small_group = group is None or group <= _FMA_MAX_GROUP
        variant = "fma" if jnp.dtype(dtype) == jnp.float32 and small_group else "pvt"
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if v_l1_dot is None:
        v_l1_dot = variant == "pvt" and dtype == jnp.bfloat16
    elif not _is_bool(v_l1_dot):
        raise ValueError(f"v_l1_dot must be None, True or False, got {v_l1_dot!r}")
    _check_v_l1_dot("v_l1_dot", v_l1_dot, variant, dtype)
    if partial_dtype is None:
        partial_dtype = "bfloat16" if jnp.dtype(dtype) == jnp.bfloat16 else "float32"
    if partial_dtype not in PARTIAL_DTYPES:
        raise ValueError(f"partial_dtype must be one of {PARTIAL_DTYPES}, got {partial_dtype!r}")
    fma = variant == "fma"
    if block_k is None:
        if fma:  # K and V tiles live in registers as fp32: 4096 elements each
            block_k = max(16, min(64, 4096 // head_dim_p))
        else:
            # ~16 KiB per K tile: 64 slots x 128 dims x bf16 (measured best against
            # 32 and 128); fewer slots for fp32 or wide heads.
            block_k = max(16, min(128, 16384 // (head_dim_p * itemsize)))
    block_k = max(16, min(block_k, _next_pow2(slots)))
    num_blocks = -(-slots // block_k)
    if num_splits is None:
        num_splits = _splits_by_wave_model(batch * kv_heads, num_blocks)
    num_splits = max(1, min(num_splits, num_blocks))
    blocks_per_split = -(-num_blocks // num_splits)
    num_splits = -(-num_blocks // blocks_per_split)
    return KernelConfig(
        block_k=block_k,
        blocks_per_split=blocks_per_split,
        num_splits=num_splits,
        num_warps=num_warps if num_warps is not None else 4,
        # 2 stages measured best for the dot bodies at 128 x 8192; "fma" keeps
        # its tiles in registers and gains nothing from cp.async stages (NOTES.md).
        num_stages=num_stages if num_stages is not None else (1 if fma else 2),
        variant=variant,
        partial_dtype=partial_dtype,
        combine_programs=combine_programs if combine_programs is not None else _COMBINE_PROGRAMS,
        combine_warps=combine_warps if combine_warps is not None else _COMBINE_WARPS,
        combine_row_loop=None if combine_row_loop is None else bool(combine_row_loop),
        combine_step_elems=combine_step_elems,
        v_l1_dot=bool(v_l1_dot),
    )


def _check_v_l1_dot(name: str, v_l1_dot, variant: str, dtype) -> None:
    if not _is_bool(v_l1_dot):
        raise ValueError(f"{name} must be True or False, got {v_l1_dot!r}")
    if v_l1_dot and (variant != "pvt" or dtype != jnp.bfloat16):
        raise ValueError(f"{name} needs the \"pvt\" body and bfloat16 inputs (an fp32 dot "
                         f"would round |v| to TF32), got variant {variant!r}, dtype {dtype}")


def _check_block_k(name: str, block_k) -> None:
    if not _is_int(block_k) or block_k < 16 or block_k & (block_k - 1):
        raise ValueError(f"{name} must be a power of two >= 16, got {block_k!r}")


def _check_num_warps(name: str, warps) -> None:
    if not _is_int(warps) or warps not in ALLOWED_NUM_WARPS:
        raise ValueError(f"{name} must be a power of two in [1, 32], got {warps!r}")


def _check_plan_args(**args) -> None:
    """Range checks of ``plan_config``'s sizes and overrides (None = not given)."""
    for name in ("batch", "kv_heads", "slots", "head_dim"):
        if not _is_int(args[name]) or args[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {args[name]!r}")
    if args["head_dim"] > MAX_HEAD_DIM:
        raise ValueError(f"head_dim must be in [1, {MAX_HEAD_DIM}], got {args['head_dim']}")
    for name in ("num_splits", "num_stages", "group", "combine_programs"):
        if args[name] is not None and (not _is_int(args[name]) or args[name] < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {args[name]!r}")
    if args["block_k"] is not None:
        _check_block_k("block_k", args["block_k"])
    if args["num_warps"] is not None:
        _check_num_warps("num_warps", args["num_warps"])
    if args["combine_warps"] is not None:
        _check_num_warps("combine_warps", args["combine_warps"])
    _check_step_elems("combine_step_elems", args["combine_step_elems"])
    _check_row_loop("combine_row_loop", args["combine_row_loop"])


def check_config(config, slots: int, dtype) -> None:
    """Raises unless ``config`` is a usable exact launch for ``slots`` slots of ``dtype``.

    Raises:
      TypeError: ``config`` is not a :class:`KernelConfig`.
      ValueError: a field out of range, an unknown ``variant``, ``v_l1_dot``
        without the "pvt" body and bfloat16 (e.g. a config planned for bf16
        reused for fp32 inputs), or a launch that does not cover
        ``slots`` with every split non-empty.
    """
    if not isinstance(config, KernelConfig):
        raise TypeError(f"config must be a KernelConfig (see plan_config), got "
                        f"{type(config).__name__}")
    if config.variant not in VARIANTS:
        raise ValueError(f"config.variant must be one of {VARIANTS}, got {config.variant!r}")
    if config.partial_dtype not in PARTIAL_DTYPES:
        raise ValueError(f"config.partial_dtype must be one of {PARTIAL_DTYPES}, got "
                         f"{config.partial_dtype!r}")
    _check_block_k("config.block_k", config.block_k)
    _check_num_warps("config.num_warps", config.num_warps)
    _check_num_warps("config.combine_warps", config.combine_warps)
    _check_step_elems("config.combine_step_elems", config.combine_step_elems)
    _check_row_loop("config.combine_row_loop", config.combine_row_loop)
    _check_v_l1_dot("config.v_l1_dot", config.v_l1_dot, config.variant, jnp.dtype(dtype))
    for name in ("blocks_per_split", "num_splits", "num_stages", "combine_programs"):
        value = getattr(config, name)
        if not _is_int(value) or value < 1:
            raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
    covered = config.num_splits * config.split_len
    if not covered - config.split_len < slots <= covered:
        raise ValueError(
            f"config covers {covered} slots ({config.num_splits} splits x {config.split_len}); "
            f"it must cover the {slots} slots of k/v with no empty split: plan it with "
            f"plan_config(..., slots={slots}, ...)")


def _splits_by_wave_model(rows: int, num_blocks: int, wave: int = _PROGRAMS_PER_WAVE) -> int:
    """Split count per row that minimises the modelled time of the split kernel.

    ``rows`` = batch * kv_heads; ``wave`` = programs resident on the GPU at
    once (528 for the default bf16 launch; measured for that launch only, the
    fp32 "fma" body and other head_dims reuse it).  Every program streams
    ``tiles = ceil(num_blocks / splits)`` tiles and pays a fixed cost of about
    one tile (q load, partial output stores, its share of the combine), and the
    programs run in ``waves = ceil(rows * splits / wave)`` rounds of equal
    length (``_compat.splits_by_wave_model``).  At 128 tiles per row this gives
    one full wave where one exists (8 rows -> 64 splits, 64 rows -> 8, 256 rows
    -> 2), one split at 528 or 1024 rows, several where one split would leave a
    ragged second wave (600 rows -> 7); it never splits a row into one-tile
    programs just to fill a ragged wave (496 rows x 32 tiles -> 1 split, not 32).
    """
    return _compat.splits_by_wave_model(rows, num_blocks, wave, _MAX_AUTO_SPLITS)


def _split_kernel(layer_ref, q_ref, k_ref, v_ref, valid_ref,
                  o_ref, m_ref, l_ref, imp_ref, mblk_ref, count_ref, *,
                  scale, group, head_dim, slots, cfg: KernelConfig,
                  group_p, head_dim_p, precision, final_out):
    """One program: one (sequence, KV head, split of slots) of layer ``layer_ref[0]``.

    ``k_ref``/``v_ref`` hold every layer of the buffer (``[layers, split_len,
    head_dim_p]`` for this program) and ``valid_ref`` ``[layers, slots]``: the decoder passes
    its whole stacked buffer so that no per-layer copy is made.
    """
    split = pl.program_id(2)
    layer = layer_ref[0]

    @pl.when(split == 0)
    def _zero_combine_counter():
        _store(count_ref, jnp.zeros((1,), jnp.int32))

    block_k = cfg.block_k
    col_ok = jnp.arange(head_dim_p) < head_dim
    pad_cols = head_dim_p != head_dim
    pad_slots = cfg.num_splits * cfg.split_len != slots
    cols = pl.ds(0, head_dim_p)

    def load_tile(i):
        """K, V tiles ``[block_k, head_dim_p]`` and slot validity ``[block_k]`` of tile ``i``."""
        tile = pl.ds(i * block_k, block_k)
        if pad_slots:
            in_range = split * cfg.split_len + i * block_k + jnp.arange(block_k) < slots
            kv_mask = in_range[:, None] & col_ok[None, :] if pad_cols else in_range[:, None]
            ok = _load(valid_ref.at[layer, tile], mask=in_range, other=False)
        else:
            kv_mask = col_ok[None, :] if pad_cols else None
            ok = _load(valid_ref.at[layer, tile])
        if kv_mask is None:
            k = _load(k_ref.at[layer, tile, cols])
            v = _load(v_ref.at[layer, tile, cols])
        else:
            kv_mask = jnp.broadcast_to(kv_mask, (block_k, head_dim_p))
            k = _load(k_ref.at[layer, tile, cols], mask=kv_mask, other=0)
            v = _load(v_ref.at[layer, tile, cols], mask=kv_mask, other=0)
        return k, v, ok

    if cfg.variant == "fma":
        _fma_body(q_ref, o_ref, m_ref, l_ref, imp_ref, mblk_ref, load_tile, scale=scale,
                  group=group, head_dim_p=head_dim_p, col_ok=col_ok, cfg=cfg, final_out=final_out)
        return

    row_ok = jnp.arange(group_p) < group  # real query heads of the group
    q = _load(q_ref.at[pl.ds(0, group_p), cols], mask=row_ok[:, None] & col_ok[None, :], other=0)
    ones = jnp.ones((group_p, head_dim_p), q.dtype) if cfg.v_l1_dot else None

    def body(i, carry):
        o, m, l = carry
        k, v, ok = load_tile(i)
        logits = jax.lax.dot_general(
            q, k, (((1,), (1,)), ((), ())), precision=precision,
            preferred_element_type=jnp.float32) * scale  # [group_p, block_k]
        logits = jnp.where(ok[None, :], logits, _MASK_VALUE)
        m_new = jnp.maximum(m, jnp.max(logits, axis=1))
        rescale = jnp.exp(m - m_new)
        e = jnp.where(ok[None, :], jnp.exp(logits - m_new[:, None]), 0.0)
        l = rescale * l + jnp.sum(e, axis=1)
        # o^T += v^T e^T: V as the dot's A operand (registers), |v|_1 from the same tile.
        o = rescale[None, :] * o + jax.lax.dot_general(
            v, e.astype(v.dtype), (((0,), (1,)), ((), ())), precision=precision,
            preferred_element_type=jnp.float32)
        # Importance numerator for this tile, relative to m_new (stored too).
        if cfg.v_l1_dot:  # [group_p, block_k], every row ||v_s||_1 (exact products, fp32 sum)
            v_l1 = jax.lax.dot_general(ones, jnp.abs(v), (((1,), (1,)), ((), ())),
                                       preferred_element_type=jnp.float32)
        else:
            v_l1 = jnp.sum(jnp.abs(v.astype(jnp.float32)), axis=1)[None, :]  # [1, block_k]
        # Tile-major partials: the tile's rows are one contiguous piece (module docstring).
        _store(imp_ref.at[i, pl.ds(0, group_p), pl.ds(0, block_k)],
               (e * v_l1).astype(imp_ref.dtype), mask=row_ok[:, None])
        _store(mblk_ref.at[i, pl.ds(0, group_p)], m_new, mask=row_ok)
        return o, m_new, l

    o0 = jnp.zeros((head_dim_p, group_p), jnp.float32)  # o^T
    m0 = jnp.full((group_p,), _MASK_VALUE, jnp.float32)
    l0 = jnp.zeros((group_p,), jnp.float32)
    o, m, l = jax.lax.fori_loop(0, cfg.blocks_per_split, body, (o0, m0, l0))
    o = o.T

    if final_out:  # one split: m and l are the row's, so normalise here (the XLA contract's guard)
        o = (o * (1.0 / jnp.maximum(l, 1e-30))[:, None]).astype(o_ref.dtype)
    _store(o_ref.at[pl.ds(0, group_p), cols], o, mask=row_ok[:, None] & col_ok[None, :])
    _store(m_ref.at[pl.ds(0, group_p)], m, mask=row_ok)
    _store(l_ref.at[pl.ds(0, group_p)], l, mask=row_ok)


def _fma_body(q_ref, o_ref, m_ref, l_ref, imp_ref, mblk_ref, load_tile, *, scale, group,
              head_dim_p, col_ok, cfg: KernelConfig, final_out: bool):
    """Variant "fma": both products on the CUDA cores, one query head at a time.

    No ``tt.dot``, so the group is not padded to 16 rows (group 3 or 4 does
    3-4 rows of work, not 16) and fp32 inputs need no IEEE-emulated dot; each
    head keeps its own running max / sum / output vector.  Same outputs as
    the dot body.
    """
    f32 = jnp.float32
    cols = pl.ds(0, head_dim_p)
    rows = [jnp.int32(g) for g in range(group)]  # traced ints: interpret mode needs arrays
    qs = [_load(q_ref.at[r, cols], mask=col_ok, other=0).astype(f32) * scale for r in rows]

    def body(i, carry):
        k, v, ok = load_tile(i)
        k, v = k.astype(f32), v.astype(f32)
        v_l1 = jnp.sum(jnp.abs(v), axis=1)  # [block_k]
        new = []
        for g, (o, m, l) in enumerate(carry):
            logits = jnp.where(ok, jnp.sum(k * qs[g][None, :], axis=1), _MASK_VALUE)
            m_new = jnp.maximum(m, jnp.max(logits))
            rescale = jnp.exp(m - m_new)
            e = jnp.where(ok, jnp.exp(logits - m_new), 0.0)  # [block_k]
            new.append((rescale * o + jnp.sum(e[:, None] * v, axis=0),
                        m_new, rescale * l + jnp.sum(e)))
            _store(imp_ref.at[i, rows[g], pl.ds(0, cfg.block_k)], (e * v_l1).astype(imp_ref.dtype))
            _store(mblk_ref.at[i, pl.ds(g, 1)], jnp.full((1,), m_new, f32))
        return tuple(new)

    init = tuple((jnp.zeros((head_dim_p,), f32), jnp.float32(_MASK_VALUE), jnp.float32(0.0))
                 for _ in range(group))
    final = jax.lax.fori_loop(0, cfg.blocks_per_split, body, init)
    for g, (o, m, l) in enumerate(final):
        if final_out:
            o = (o * (1.0 / jnp.maximum(l, 1e-30))).astype(o_ref.dtype)
        _store(o_ref.at[rows[g], cols], o, mask=col_ok)
        _store(m_ref.at[pl.ds(g, 1)], jnp.full((1,), m, f32))
        _store(l_ref.at[pl.ds(g, 1)], jnp.full((1,), l, f32))


def _split_partials(q, k, v, valid, layer, *, scale, cfg: KernelConfig, interpret: bool):
    """Runs the split kernel; returns the per-split partials (fp32; importance partials in
    ``cfg.partial_dtype``) and the combine's zeroed int32 chunk counter (6 arrays, in
    ``combine_partials``' argument order).  With one split per row the first
    output is the normalised attention output ``[batch, kv_heads, group, head_dim]`` in
    q's dtype instead of the per-split partial outputs.

    ``k``/``v`` are ``[layers, batch, kv_heads, slots, head_dim]``, ``valid``
    ``[layers, batch, slots]`` bool and ``layer`` int32 ``[1]``; the output
    layouts are those documented in ``triton_combine.combine_partials``.
    """
    batch, q_heads, head_dim = q.shape
    layers, _, kv_heads, slots, _ = k.shape
    group = q_heads // kv_heads
    group_p = max(16, _next_pow2(group))
    head_dim_p = max(16, _next_pow2(head_dim))
    ns, bps, sl = cfg.num_splits, cfg.blocks_per_split, cfg.split_len
    precision = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None

    # One split: the program's running max and sum are the row's, so it writes the
    # normalised output itself and the combine merges only the importance (run 38).
    final_out = ns == 1
    kernel = functools.partial(
        _split_kernel, scale=float(scale), group=group, head_dim=head_dim, slots=slots,
        cfg=cfg, group_p=group_p, head_dim_p=head_dim_p, precision=precision,
        final_out=final_out)
    f32 = jnp.float32
    if final_out:  # the attention output itself, in q's dtype
        o_shape = jax.ShapeDtypeStruct((batch, kv_heads, group, head_dim), q.dtype)
        o_spec = pl.BlockSpec((None, None, group_p, head_dim_p), lambda b, h, s: (b, h, 0, 0))
    else:  # per-split unnormalised outputs
        o_shape = jax.ShapeDtypeStruct((batch, kv_heads, group, ns, head_dim), f32)
        o_spec = pl.BlockSpec((None, None, group_p, None, head_dim_p),
                              lambda b, h, s: (b, h, 0, s, 0))
    # Importance partials and tile maxima tile-major (module docstring, run 67).
    bk = cfg.block_k
    imp_shape = jax.ShapeDtypeStruct((ns * bps, batch, kv_heads, group, bk),
                                     jnp.dtype(cfg.partial_dtype))  # e * |v|_1
    mblk_shape = jax.ShapeDtypeStruct((ns * bps, batch, kv_heads, group), f32)  # m per tile
    imp_spec = pl.BlockSpec((bps, None, None, group_p, bk), lambda b, h, s: (s, b, h, 0, 0))
    mblk_spec = pl.BlockSpec((bps, None, None, group_p), lambda b, h, s: (s, b, h, 0))
    # o, m, l query-head-major, so the combine reads each output group's rows
    # as one contiguous block (triton_combine.combine_partials).
    out_shape = [
        o_shape,
        jax.ShapeDtypeStruct((batch, kv_heads, group, ns), f32),  # m
        jax.ShapeDtypeStruct((batch, kv_heads, group, ns), f32),  # l
        imp_shape, mblk_shape,
        jax.ShapeDtypeStruct((batch, kv_heads, 1), jnp.int32),  # combine's counter, zeroed
    ]
    # Blocks may overhang the arrays (group -> group_p, head_dim -> head_dim_p,
    # slots -> num_splits x split_len); every load/store past the end is masked.  The
    # layer axis stays whole in every block: the kernel indexes it with
    # ``layer`` (Triton on GPU has no scalar prefetch for index maps).
    in_specs = [
        pl.BlockSpec((1,), lambda b, h, s: (0,)),
        pl.BlockSpec((None, None, group_p, head_dim_p), lambda b, h, s: (b, h, 0, 0)),
        pl.BlockSpec((layers, None, None, sl, head_dim_p), lambda b, h, s: (0, b, h, s, 0)),
        pl.BlockSpec((layers, None, None, sl, head_dim_p), lambda b, h, s: (0, b, h, s, 0)),
        pl.BlockSpec((layers, None, sl), lambda b, h, s: (0, b, s)),
    ]
    out_specs = [
        o_spec,
        pl.BlockSpec((None, None, group_p, None), lambda b, h, s: (b, h, 0, s)),
        pl.BlockSpec((None, None, group_p, None), lambda b, h, s: (b, h, 0, s)),
        imp_spec, mblk_spec,
        pl.BlockSpec((None, None, 1), lambda b, h, s: (b, h, 0)),
    ]
    qg = q.reshape(batch, kv_heads, group, head_dim)
    return pl.pallas_call(
        kernel,
        grid=(batch, kv_heads, ns),
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        compiler_params=pltriton.CompilerParams(num_warps=cfg.num_warps,
                                                num_stages=cfg.num_stages),
        interpret=interpret,
        name="longflow_decode_split",
    )(layer, qg, k, v, valid)


def check_supported(q, k) -> None:
    """Raises ValueError if the Triton kernel cannot run this problem.

    Supported: q/k/v dtype float32 or bfloat16; head_dim <= 256 (padded to a
    power of two inside the kernel); group size q_heads/kv_heads <= 64.
    """
    if jnp.dtype(q.dtype) not in SUPPORTED_DTYPES:
        raise ValueError(f"triton kernel: q.dtype must be one of "
                         f"{[str(d) for d in SUPPORTED_DTYPES]}, got {q.dtype}")
    head_dim = q.shape[-1]
    if not 1 <= head_dim <= MAX_HEAD_DIM:
        raise ValueError(f"triton kernel: head_dim must be in [1, {MAX_HEAD_DIM}], got {head_dim}")
    group = q.shape[1] // k.shape[-3]
    if group > MAX_GROUP:
        raise ValueError(f"triton kernel: q_heads / kv_heads must be <= {MAX_GROUP}, got {group}")


def longflow_attention_triton(q, k, v, valid, *, scale: float, layer=None, per_kv_head: bool = False,
                              interpret: bool = False, config: KernelConfig | None = None):
    """LongFlow decode attention as a fused Pallas/Triton kernel plus a one-launch combine.

    Same contract as ``pallas_kernels.xla.longflow_attention_xla``, except that
    with bf16 inputs the importance is within ``2**-8`` relative of it per slot
    (bf16 partials; module docstring), so near-ties may pick another slot.

    Args:
      q: ``[batch, q_heads, head_dim]`` float32 or bfloat16.
      k, v: ``[batch, kv_heads, slots, head_dim]`` in q's dtype, or with
        ``layer`` the decoder's stacked buffer ``[layers, batch, kv_heads,
        slots, head_dim]`` (read in place, no per-layer copy).
      valid: ``[batch, slots]`` bool (``[layers, batch, slots]`` with ``layer``).
      scale: softmax scale.
      layer: None, or an int32 scalar (may be traced) selecting the layer; a
        traced one is clamped to ``[0, layers)``, a concrete one out of range
        raises.
      per_kv_head: importance and eviction slot per KV head.
      interpret: run the kernel in Pallas interpret mode (CPU tests).
      config: launch shape; ``plan_config`` picks one when None.

    Returns:
      ``(out [batch, q_heads, head_dim] q.dtype, slot int32 [batch] or
      [batch, kv_heads], importance float32 [batch, slots] or
      [batch, kv_heads, slots])``.

    Raises:
      ValueError: bad shapes, dtypes, ``scale`` or ``layer`` (as
        ``longflow_decode_attention``), an unsupported dtype, head_dim or group
        size (``check_supported``), or a ``config`` that is not an exact launch
        covering ``slots`` for q's dtype (``check_config``; with
        ``combine_row_loop=True``, at most 64 query-head rows); without ``interpret``, a
        platform other than CUDA (at once when eager, when the enclosing
        function is lowered under ``jit``; ``_platform.require_kernel_platform``).
      TypeError: ``config`` not a :class:`KernelConfig`.
    """
    validate_decode_args(q, k, v, valid, scale=scale, impl="triton", layer=layer)
    check_supported(q, k)
    if layer is None:  # one layer: a free leading axis of size 1
        k, v, valid = k[None], v[None], valid[None]
        layer = 0
    # The kernels index memory with it: clamp like lax.dynamic_slice.
    layer = jnp.clip(jnp.reshape(jnp.asarray(layer, jnp.int32), (1,)), 0, k.shape[0] - 1)
    batch, _, head_dim = q.shape
    kv_heads, slots = k.shape[2], k.shape[3]
    if config is None:
        config = plan_config(batch, kv_heads, slots, head_dim, q.dtype,
                             group=q.shape[1] // kv_heads)
    check_config(config, slots, q.dtype)
    q = require_kernel_platform("triton", q, k, v, valid, layer, interpret=interpret)
    # ``valid`` goes in as bool (Triton reads i1 memory as bytes): a separate
    # int8 cast would be one more launch per step.
    o_part, m_part, l_part, imp_part, m_tile, counter = _split_partials(
        q, k, v, valid, layer, scale=scale, cfg=config, interpret=interpret)
    return combine_partials(o_part, m_part, l_part, imp_part, m_tile, valid, layer, counter,
                            block_k=config.block_k, slots=slots, out_dtype=q.dtype,
                            per_kv_head=per_kv_head, interpret=interpret,
                            target_programs=config.combine_programs,
                            num_warps=config.combine_warps, step_elems=config.combine_step_elems,
                            row_loop=config.combine_row_loop)
