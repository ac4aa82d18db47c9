"""Greedy tokens of e2e_decode.py's random-weight model under one attention impl, as JSON.

Run once per process with different XLA_FLAGS (e.g. --xla_gpu_autotune_level=0) to see whether
the XLA path's own fp32 rounding (its autotuned GEMM choice) moves where a near-tie falls (run 59).
Usage: python benchmarks/token_drift.py {xla,triton} OUT.json
"""

import dataclasses
import json
import os
import sys

import jax.numpy as jnp
import numpy as np

from benchmarks.e2e_decode import SMOLLM2_135M, random_params
from longflow_jax import generate

impl, path = sys.argv[1], sys.argv[2]
untied = dataclasses.replace(SMOLLM2_135M, tie_word_embeddings=False)
params = random_params(untied, jnp.float32, peaked=True)
rng = np.random.default_rng(0)
prompts = [rng.integers(0, untied.vocab_size, n).tolist() for n in (40, 23)]
res = generate(params, untied, prompts, max_new_tokens=256, budget=64, attn_impl=impl)
with open(path, "w") as f:
    json.dump({"impl": impl, "xla_flags": os.environ.get("XLA_FLAGS", ""), "tokens": res.tokens}, f)
print(impl, os.environ.get("XLA_FLAGS", ""), [len(t) for t in res.tokens])
