"""``longflow-sample``: generate with a fixed-size LongFlow KV buffer from the command line.

Examples::

    longflow-sample --prompt "What is 17 * 23?" --budget 128 --max-new-tokens 512
    longflow-sample --jsonl ../shared/data/math/gsm8k.jsonl --field question --limit 8 \\
        --batch-size 4 --compression 0.8 --output out.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="longflow-sample",
        description="Generate long outputs with a fixed-size KV cache chosen by the LongFlow eviction rule.",
    )
    p.add_argument("--model", help="HF checkpoint folder or .gguf file (default: embedded SmolLM2-135M-Instruct)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="a single prompt (streams the answer)")
    src.add_argument("--prompt-file", help="text file holding one prompt")
    src.add_argument("--jsonl", help="JSON-lines file, one prompt per line (see --field)")
    p.add_argument("--field", default="question", help="field of each --jsonl record holding the prompt (default: question)")
    p.add_argument("--limit", type=int, help="use only the first N records of --jsonl")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--budget", type=int, help="KV slots per layer (default 128 for longflow)")
    size.add_argument("--compression", type=float, help="fraction of prompt+output tokens evicted, in (0, 1), e.g. 0.8")
    p.add_argument("--policy", choices=("longflow", "longflow-per-head", "full"), default="longflow",
                   help="longflow: one eviction per layer (paper default); longflow-per-head: one per KV head; "
                        "full: keep every token")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--min-new-tokens", type=int, default=0, help="suppress stop tokens until this many were generated")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="0 disables")
    p.add_argument("--top-p", type=float, default=1.0, help="in (0, 1]; 1 disables")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 0; 1 disables")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attn-impl", choices=("auto", "xla", "triton", "mosaic"), default="auto")
    p.add_argument("--no-chat-template", action="store_true", help="feed the raw prompt (default: apply the chat template)")
    p.add_argument("--system", help="optional system message for the chat template")
    p.add_argument("--output", help="write one JSON record per prompt to this JSON-lines file")
    return p


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Reject bad values before anything heavy (model load, compile) starts."""
    if a.policy == "full" and (a.budget is not None or a.compression is not None):
        p.error("--budget/--compression apply to the longflow policies; --policy full keeps every token")
    if a.budget is not None and a.budget < 2:
        p.error(f"--budget must be >= 2, got {a.budget}")
    if a.compression is not None and not 0 < a.compression < 1:
        p.error(f"--compression must be in (0, 1) (fraction evicted), got {a.compression}")
    if a.max_new_tokens < 1:
        p.error(f"--max-new-tokens must be >= 1, got {a.max_new_tokens}")
    if not 0 <= a.min_new_tokens <= a.max_new_tokens:
        p.error(f"--min-new-tokens must be in [0, --max-new-tokens], got {a.min_new_tokens}")
    if a.temperature < 0:
        p.error(f"--temperature must be >= 0 (0 = greedy), got {a.temperature}")
    if a.top_k < 0:
        p.error(f"--top-k must be >= 0 (0 disables), got {a.top_k}")
    if not 0 < a.top_p <= 1:
        p.error(f"--top-p must be in (0, 1], got {a.top_p}")
    if a.repetition_penalty <= 0:
        p.error(f"--repetition-penalty must be > 0, got {a.repetition_penalty}")
    if a.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {a.batch_size}")
    if a.limit is not None and a.limit < 1:
        p.error(f"--limit must be >= 1, got {a.limit}")
    if a.model is not None and not Path(a.model).exists():
        p.error(f"--model {a.model}: no such file or folder")
    if a.output is not None and not Path(a.output).resolve().parent.is_dir():
        p.error(f"--output {a.output}: folder does not exist")


def _read_prompts(p: argparse.ArgumentParser, a: argparse.Namespace) -> list[str]:
    if a.prompt is not None:
        prompts = [a.prompt]
    elif a.prompt_file is not None:
        try:
            prompts = [Path(a.prompt_file).read_text()]
        except OSError as e:
            p.error(f"--prompt-file {a.prompt_file}: {e.strerror}")
    else:
        prompts = []
        try:
            lines = Path(a.jsonl).read_text().splitlines()
        except OSError as e:
            p.error(f"--jsonl {a.jsonl}: {e.strerror}")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                p.error(f"--jsonl {a.jsonl} line {n} is not valid JSON: {e.msg}")
            if not isinstance(rec, dict) or a.field not in rec:
                p.error(f"--jsonl {a.jsonl} line {n} has no field {a.field!r} (set --field)")
            prompts.append(str(rec[a.field]))
            if a.limit is not None and len(prompts) >= a.limit:
                break
        if not prompts:
            p.error(f"--jsonl {a.jsonl} holds no records")
    for i, text in enumerate(prompts):
        if not text.strip():
            p.error(f"prompt {i} is empty")
    return prompts


def _encode(tokenizer, text: str, chat: bool, system: str | None) -> list[int]:
    if chat and getattr(tokenizer, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        rendered = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    _check_args(parser, a)
    prompts = _read_prompts(parser, a)

    # Heavy imports only after the arguments are known to be good.
    from tqdm.auto import tqdm

    from longflow_jax.decode_loop import generate, resolve_budget
    from longflow_jax.loading import ModelLoadError, load_model
    from longflow_jax.config import UnsupportedModelError
    from longflow_jax.sampling import SamplingParams

    sampling = SamplingParams.create(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                                     repetition_penalty=a.repetition_penalty)
    try:
        model = load_model(a.model, dtype=a.dtype)
    except (ModelLoadError, UnsupportedModelError) as e:
        parser.error(f"--model: {e}")
    tok = model.tokenizer
    encoded = [_encode(tok, t, not a.no_chat_template, a.system) for t in prompts]
    budget = a.budget if (a.budget is not None or a.compression is not None or a.policy == "full") else 128
    for i, ids in enumerate(encoded):
        if len(ids) > model.cfg.max_position_embeddings:
            parser.error(f"prompt {i} has {len(ids)} tokens, longer than the model's context "
                         f"({model.cfg.max_position_embeddings})")
    try:  # validate budget against the model before compiling anything
        resolve_budget(model.cfg, a.policy, max(map(len, encoded)), a.max_new_tokens, budget, a.compression)
    except ValueError as e:
        parser.error(str(e))

    stream = len(encoded) == 1
    records, totals = [], {"prompt": 0, "generated": 0, "prefill_s": 0.0, "decode_s": 0.0}
    bar = None if stream else tqdm(total=len(encoded), desc="prompts", unit="prompt", file=sys.stderr)
    last = None
    for start in range(0, len(encoded), a.batch_size):
        batch = encoded[start: start + a.batch_size]
        printed = {"ids": [], "text": ""}

        def on_chunk(tokens, printed=printed):
            if not stream:
                return
            printed["ids"].extend(int(t) for t in tokens[0] if t >= 0)
            text = tok.decode(printed["ids"], skip_special_tokens=True)
            print(text[len(printed["text"]):], end="", flush=True)
            printed["text"] = text

        res = generate(model.params, model.cfg, batch, max_new_tokens=a.max_new_tokens, policy=a.policy,
                       budget=budget, compression=a.compression, sampling=sampling, stop_ids=model.stop_ids,
                       seed=a.seed + start, min_new_tokens=a.min_new_tokens, attn_impl=a.attn_impl, on_chunk=on_chunk)
        last = res
        totals["prompt"] += sum(res.prompt_tokens)
        totals["generated"] += res.generated_tokens
        totals["prefill_s"] += res.prefill_seconds
        totals["decode_s"] += res.decode_seconds
        for j, ids in enumerate(res.tokens):
            records.append({"index": start + j, "prompt": prompts[start + j],
                            "completion": tok.decode(ids, skip_special_tokens=True),
                            "prompt_tokens": res.prompt_tokens[j], "generated_tokens": len(ids)})
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    if stream:
        print()
    if a.output:
        # Write to a temporary file first so a failure never leaves half a file.
        out = Path(a.output)
        fd, tmp = tempfile.mkstemp(dir=out.resolve().parent, prefix=out.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, out)

    print("\n--- summary ---", file=sys.stderr)
    print(f"model            {model.source}", file=sys.stderr)
    print(f"policy           {a.policy}, budget {last.budget} slots/layer", file=sys.stderr)
    print(f"prompt tokens    {totals['prompt']}", file=sys.stderr)
    print(f"generated tokens {totals['generated']}", file=sys.stderr)
    print(f"prefill          {totals['prompt'] / max(totals['prefill_s'], 1e-9):.1f} tokens/s "
          f"({totals['prefill_s']:.2f} s, compile included)", file=sys.stderr)
    print(f"decode           {totals['generated'] / max(totals['decode_s'], 1e-9):.1f} tokens/s "
          f"({totals['decode_s']:.2f} s, compile included)", file=sys.stderr)
    print(f"KV buffer        {_fmt_bytes(last.buffer_bytes)} (fixed) vs full cache "
          f"{_fmt_bytes(last.full_cache_bytes)} for the last batch", file=sys.stderr)
    if not stream and not a.output:
        for r in records:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
