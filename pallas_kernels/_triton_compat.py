"""Small helpers shared by the Triton kernels (names that moved across jax versions, sizes)."""

from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

# Masked loads/stores live in pallas.triton in newer jax, in pallas itself in older.
load = getattr(pltriton, "load", None) or pl.load
store = getattr(pltriton, "store", None) or pl.store


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (Triton blocks must be powers of two)."""
    return 1 << max(0, (n - 1).bit_length())


def splits_by_wave_model(rows: int, units: int, wave: int, max_splits: int) -> int:
    """How many programs to cut each of ``rows`` rows of ``units`` work units into.

    The programs run in rounds of ``wave`` resident programs; a program that
    does ``per = ceil(units / splits)`` units costs ``per + 1`` (the ``+ 1`` is
    its fixed cost: setup, partial stores, final reduction), so the modelled
    time is ``ceil(rows * splits / wave) * (per + 1)``.  Returns the split
    count (at most ``max_splits``, after rounding to whole units per program)
    that minimises it; the fewest splits win ties.  Used for the split kernel's
    split-K count (``triton_decode``) and the combine's chunk count
    (``triton_combine``).
    """
    best, best_cost = 1, None
    for wanted in range(1, min(units, max_splits) + 1):
        per = -(-units // wanted)
        splits = -(-units // per)  # after rounding to whole units per program
        cost = -(-rows * splits // wave) * (per + 1)
        if best_cost is None or cost < best_cost:
            best, best_cost = splits, cost
    return best
