"""End-to-end greedy decoding of the REAL SmolLM2-135M-Instruct on the GPU: fused kernel vs XLA attention.

``e2e_decode.py`` uses random weights because the 98 MB GGUF is larger than
what one device call carries (64 MiB).  This script is run after the file was
sent in two halves over two calls of one warm lease (benchmarks/runs/run27.sh), so
the issue's token-agreement check also runs on the trained model, whose
next-token distributions are far from flat.

Prompts are tokenized on the CPU machine with the model's own chat template
(``--write-prompts``, writes benchmarks/e2e_real_prompts.json), so the GPU side
needs no chat-template renderer; the emitted ids are decoded back to text on
the CPU machine (``--show OUT/tokens.json``).  (Run 27 read the GGUF with
``loading._read_gguf`` and no tokenizer; the weights are the same either way.)

Usage:
  python benchmarks/e2e_real.py --write-prompts                  # CPU machine, once
  PYTHONPATH=.:.carry python benchmarks/e2e_real.py MODEL.gguf OUT  # GPU machine
  python benchmarks/e2e_real.py --show OUT/tokens.json             # CPU machine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROMPTS_FILE = Path(__file__).with_name("e2e_real_prompts.json")
MATH_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "math" / "gsm8k.jsonl"
NEW_TOKENS, BUDGET = 256, 64
IMPLS = ("xla", "triton")  # reference first


def write_prompts() -> None:
    from longflow_jax.cli import _encode
    from longflow_jax.loading import load_model

    model = load_model()
    rows = [json.loads(line) for line in MATH_FILE.open()][:2]
    ids = [_encode(model.tokenizer, r["question"], True, None) for r in rows]
    PROMPTS_FILE.write_text(json.dumps({"source": f"{MATH_FILE.name} rows 0-1, chat template",
                                        "prompt_ids": ids}))
    print(f"wrote {PROMPTS_FILE}: prompt lengths {[len(x) for x in ids]}")


def run_on_device(gguf_path: str, out_dir: str) -> None:
    import jax

    from longflow_jax.generation import generate
    from longflow_jax.loading import load_model

    print(f"devices: {jax.devices()}  jax {jax.__version__}", flush=True)
    model = load_model(gguf_path, dtype="float32")
    cfg, params = model.cfg, model.params
    prompts = json.loads(PROMPTS_FILE.read_text())["prompt_ids"]
    result = {}
    for impl in IMPLS:
        res = generate(params, cfg, prompts, max_new_tokens=NEW_TOKENS, budget=BUDGET, attn_impl=impl)
        result[impl] = res.tokens  # (a CPU smoke test runs IMPLS = ("xla", "xla"))
        print(f"{impl}: {[len(t) for t in res.tokens]} tokens, decode {res.decode_seconds:.2f} s", flush=True)
    for row, (a, b) in enumerate(zip(*(result[impl] for impl in IMPLS))):
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"row {row}: prompt {len(prompts[row])} tokens, budget {BUDGET}; kernel == XLA for the "
              f"first {same} of {len(a)} greedy fp32 tokens; identical={a == b}", flush=True)
    Path(out_dir, "tokens.json").write_text(json.dumps(result))
    if IMPLS[1] == "triton":  # same tokens fed to both: do the per-layer eviction slots agree?
        from benchmarks.e2e_decode import eviction_agreement

        for row, prompt in enumerate(prompts):
            diff, total, first = eviction_agreement(params, cfg, prompt, result["xla"][row], BUDGET)
            print(f"row {row}: eviction slots on XLA's tokens: {diff} of {total} (step, layer) "
                  f"decisions differ; first at step {first}", flush=True)


def show(tokens_file: str) -> None:
    from longflow_jax.loading import load_model

    tok = load_model().tokenizer
    for impl, rows in json.loads(Path(tokens_file).read_text()).items():
        for row, ids in enumerate(rows):
            print(f"--- {impl} row {row} ---\n{tok.decode(ids)}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf", nargs="?", help="reassembled GGUF file (GPU machine)")
    ap.add_argument("out", nargs="?", default=".", help="folder for tokens.json")
    ap.add_argument("--write-prompts", action="store_true")
    ap.add_argument("--show", metavar="TOKENS_JSON")
    a = ap.parse_args()
    if a.write_prompts:
        write_prompts()
    elif a.show:
        show(a.show)
    elif a.gguf:
        run_on_device(a.gguf, a.out)
    else:
        ap.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
