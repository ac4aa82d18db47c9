"""Small helpers shared by the Triton kernels (names that moved across jax versions, sizes)."""

from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

# Masked loads/stores live in pallas.triton in newer jax, in pallas itself in older.
load = getattr(pltriton, "load", None) or pl.load
store = getattr(pltriton, "store", None) or pl.store


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (Triton blocks must be powers of two)."""
    return 1 << max(0, (n - 1).bit_length())
