"""Public entry point; dispatches to the XLA path, the Triton kernel or the Mosaic kernel."""

from __future__ import annotations

from pallas_kernels.xla import longflow_attention_xla


def longflow_decode_attention(q, k, v, valid, *, scale, impl="auto", per_kv_head=False,
                              return_importance=False):
    """Placeholder: XLA only until the kernels land (see issue 3)."""
    out, slot, imp = longflow_attention_xla(q, k, v, valid, scale=scale, per_kv_head=per_kv_head)
    if return_importance:
        return out, slot, imp
    return out, slot
