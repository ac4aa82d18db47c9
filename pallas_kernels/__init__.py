"""Fused LongFlow decode attention: flash-decoding + importance + eviction slot.

Public entry point: :func:`longflow_decode_attention`.
"""

from pallas_kernels.api import longflow_decode_attention
from pallas_kernels.xla import longflow_attention_xla, select_eviction_slot

__all__ = ["longflow_decode_attention", "longflow_attention_xla", "select_eviction_slot"]
