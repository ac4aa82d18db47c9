"""Where the kernel and the XLA path evict different slots in the e2e model, how close was the call?

Runs the SmolLM2-shaped peaked random model of ``e2e_decode.py`` (fp32, budget
64, 256 greedy tokens) with both attention implementations evaluated at every
(step, layer); the XLA result drives decoding.  For every decision where the
two eviction slots differ it prints the XLA importances of both slots and their
gap relative to the row's largest importance: a gap at fp32 rounding level
(~1e-7) is a tie that two correct summation orders may break differently.

Usage (GPU machine, repo root):  PYTHONPATH=. python benchmarks/eviction_margin.py
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

import longflow_jax.model as model
from benchmarks.e2e_decode import SMOLLM2_135M, random_params
from longflow_jax.generation import generate

_attention = model.longflow_decode_attention
_found = []


def _report(slot_t, slot_x, imp_x, layer):
    slot_t, slot_x, imp_x = np.asarray(slot_t), np.asarray(slot_x), np.asarray(imp_x)
    for b in np.nonzero(slot_t != slot_x)[0]:
        top = np.abs(imp_x[b]).max()
        gap = imp_x[b, slot_t[b]] - imp_x[b, slot_x[b]]
        _found.append(gap / top)
        print(f"layer {int(layer)} row {b}: xla slot {slot_x[b]} (imp {imp_x[b, slot_x[b]]:.9e}), "
              f"kernel slot {slot_t[b]} (imp {imp_x[b, slot_t[b]]:.9e}); gap / max = {gap / top:.2e}",
              flush=True)


def both(q, k, v, valid, *, scale, layer=None, impl="auto", per_kv_head=False,
         return_importance=False, interpret=False):
    del impl, return_importance, interpret
    out_x, slot_x, imp_x = _attention(q, k, v, valid, scale=scale, layer=layer, impl="xla",
                                      per_kv_head=per_kv_head, return_importance=True)
    _, slot_t = _attention(q, k, v, valid, scale=scale, layer=layer, impl="triton",
                           per_kv_head=per_kv_head, interpret=jax.default_backend() != "gpu")
    jax.debug.callback(_report, slot_t, slot_x, imp_x, layer)
    return out_x, slot_x


def main() -> None:
    model.longflow_decode_attention = both
    cfg = dataclasses.replace(SMOLLM2_135M, tie_word_embeddings=False)
    params = random_params(cfg, jnp.float32, peaked=True)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, cfg.vocab_size, n).tolist() for n in (40, 23)]
    tokens = int(os.environ.get("MARGIN_TOKENS", 256))  # fewer for a CPU smoke test (interpret mode)
    generate(params, cfg, prompts, max_new_tokens=tokens, budget=64, attn_impl="xla")
    gaps = np.asarray(_found)
    print(f"{len(gaps)} differing decisions; largest gap / max importance: "
          f"{gaps.max() if len(gaps) else 0:.2e}", flush=True)


if __name__ == "__main__":
    main()
