"""Where greedy fp32 tokens of the kernel and the XLA path part, was it a near-tie of the logits?

``e2e_decode.py`` decodes 256 greedy tokens per row with each attention
implementation and compares the token lists.  This script replays the XLA
tokens (teacher forcing) and, at every step, runs one decode step with each
implementation from the *same* state (the XLA state drives).  Per step it
compares the eviction slots of all layers and the next-token logits, and
prints every step where the eviction slots differ or the two argmaxes differ,
with the gap between XLA's two largest logits.  A flip whose top-2 gap is at
the size of the logit difference (fp32 rounding of two different compiled
programs) is a tie, not a bug.

Usage (GPU machine, repo root):  PYTHONPATH=. python benchmarks/token_margin.py
(CPU smoke test: TOKEN_MARGIN_IMPL=xla MARGIN_TOKENS=4 ...)
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.e2e_decode import SMOLLM2_135M, random_params
from longflow_jax.decode_loop import _decode_chunk, start
from longflow_jax.generation import _pad_prompts, generate
from longflow_jax.sampling import SamplingParams


def main() -> None:
    other = os.environ.get("TOKEN_MARGIN_IMPL", "triton")
    n_tokens = int(os.environ.get("MARGIN_TOKENS", "256"))
    cfg = dataclasses.replace(SMOLLM2_135M, tie_word_embeddings=False)
    params = random_params(cfg, jnp.float32, peaked=True)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, cfg.vocab_size, n).tolist() for n in (40, 23)]
    gen = {impl: generate(params, cfg, prompts, max_new_tokens=n_tokens, budget=64,
                          attn_impl=impl).tokens for impl in ("xla", other)}
    for row in range(len(prompts)):
        a, b = gen["xla"][row], gen[other][row]
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        print(f"row {row}: free-running tokens first differ at index {first}", flush=True)

    tokens, valid = _pad_prompts(prompts, cfg)
    state = start(params, jnp.asarray(tokens), jnp.asarray(valid), n_tokens, 0, cfg=cfg, budget=64)
    greedy = SamplingParams.create(temperature=0.0)
    run = {impl: functools.partial(_decode_chunk, sampling=greedy, cfg=cfg, attn_impl=impl)
           for impl in ("xla", other)}
    forced_all = np.asarray(gen["xla"], np.int32)  # [rows, n_tokens]
    flips, evict_diffs, max_dlogit = 0, 0, 0.0
    for i in range(n_tokens - 1):
        forced = jnp.asarray(forced_all[:, i:i + 1])
        nxt = {impl: fn(params, jax.tree.map(jnp.copy, state), forced)[0]
               for impl, fn in run.items()}
        ev = np.asarray(nxt["xla"].buffer.next_slot != nxt[other].buffer.next_slot)  # [layers, b]
        lx, lo = np.asarray(nxt["xla"].logits), np.asarray(nxt[other].logits)
        dlogit = np.abs(lx - lo).max(axis=-1)
        max_dlogit = max(max_dlogit, float(dlogit.max()))
        top2 = np.sort(lx, axis=-1)[:, -2:]
        gap = top2[:, 1] - top2[:, 0]
        flip = lx.argmax(-1) != lo.argmax(-1)
        evict_diffs += int(ev.sum())
        flips += int(flip.sum())
        if ev.any() or flip.any():
            print(f"step {i} (predicts token {i + 1}): evictions differing per row "
                  f"{ev.sum(axis=0).tolist()}, argmax flip per row {flip.tolist()}, "
                  f"XLA top-2 logit gap {gap.tolist()}, max |logit difference| {dlogit.tolist()}",
                  flush=True)
        state = nxt["xla"]
    print(f"{n_tokens - 1} steps x {len(prompts)} rows from the same state: {flips} argmax flips, "
          f"{evict_diffs} differing eviction slots "
          f"(of {(n_tokens - 1) * len(prompts) * cfg.num_layers}), "
          f"largest |logit difference| {max_dlogit:.2e}", flush=True)


if __name__ == "__main__":
    main()
