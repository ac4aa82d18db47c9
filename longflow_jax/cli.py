"""``longflow-sample``: generate with a fixed-size LongFlow KV buffer from the command line.

Examples::

    longflow-sample --prompt "What is 17 * 23?" --budget 128 --max-new-tokens 512
    longflow-sample --jsonl ../shared/data/math/gsm8k.jsonl --field question --limit 8 \\
        --batch-size 4 --compression 0.8 --output out.jsonl
    longflow-sample --jsonl ../shared/data/math/math.jsonl --answer-field true_answer --limit 50 \\
        --batch-size 8 --budget 256 --max-new-tokens 2048 --output graded.jsonl   # accuracy
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for real only after the arguments are checked (it loads jax)
    from longflow_jax.sampling import SamplingParams


def build_parser() -> argparse.ArgumentParser:
    """The ``longflow-sample`` argument parser (flags and defaults as in the README's table).

    Value checks that argparse cannot express live in ``_check_args``.
    """
    p = argparse.ArgumentParser(
        prog="longflow-sample",
        description="Generate long outputs with a fixed-size KV cache chosen by the LongFlow eviction rule.",
    )
    p.add_argument("--model", help="HF checkpoint folder, .gguf file or converted checkpoint folder "
                                   "(default: embedded SmolLM2-135M-Instruct)")
    p.add_argument("--save-checkpoint", metavar="DIR",
                   help="convert --model once: write it as an Orbax checkpoint to the new or empty folder DIR "
                        "(e.g. checkpoints/smollm2) and exit; later runs load DIR with --model DIR")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", help="a single prompt (streams the answer)")
    src.add_argument("--prompt-file", help="text file holding one prompt")
    src.add_argument("--jsonl", help="JSON-lines file, one prompt per line (see --field)")
    p.add_argument("--field", help="field of each --jsonl record holding the prompt (default: question)")
    p.add_argument("--limit", type=int, help="use only the first N records of --jsonl")
    p.add_argument("--answer-field", metavar="FIELD",
                   help="grade each completion against this field of its --jsonl record (e.g. true_answer) "
                        "with Math-Verify: records get extracted_answer and correct, the summary the accuracy")
    p.add_argument("--instruction",
                   help="text appended to every prompt after a blank line (default: none; with --answer-field: "
                        "'%s'; '' or blank for none)" % _grading_instruction().replace("%", "%%"))
    size = p.add_mutually_exclusive_group()
    size.add_argument("--budget", type=int, help="KV slots per layer (default 128 for longflow and longflow-per-head)")
    size.add_argument("--compression", type=float, help="fraction of prompt+output tokens evicted, in (0, 1), e.g. 0.8")
    p.add_argument("--policy", choices=("longflow", "longflow-per-head", "full"), default="longflow",
                   help="longflow: one eviction per layer (paper default); longflow-per-head: one per KV head; "
                        "full: keep every token (prompt + max-new-tokens must fit the model's context). "
                        "The longflow policies may generate past the model's context: positions keep counting "
                        "(RoPE extrapolation) while the buffer stays fixed")
    p.add_argument("--max-new-tokens", type=int, default=512,
                   help="tokens to generate per prompt, in [1, 2**31 - 1] (default: %(default)s)")
    p.add_argument("--min-new-tokens", type=int, default=0,
                   help="suppress stop tokens until this many were generated (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="0 disables")
    p.add_argument("--top-p", type=float, default=1.0, help="in (0, 1]; 1 disables")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 0; 1 disables")
    p.add_argument("--batch-size", type=int, default=1, help="prompts per batch (default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"),
                   help="parameter dtype (default: a converted checkpoint's own, else float32)")
    p.add_argument("--seed", type=int, default=0,
                   help="PRNG seed in [0, 2**31 - 1]; the first batch samples with it, each later batch with a "
                        "distinct seed hashed from (seed, batch number)")
    p.add_argument("--attn-impl", choices=("auto", "xla", "triton", "mosaic"), default="auto")
    p.add_argument("--no-chat-template", action="store_true", help="feed the raw prompt (default: apply the chat template)")
    p.add_argument("--system", help="system message for the chat template (default: the template's own, "
                   "SmolLM2's 'You are a helpful AI assistant ...'; '' for an empty system turn)")
    p.add_argument("--output", help="write one JSON record per prompt to this JSON-lines file (replaced when the "
                                    "run completes; an interrupted run leaves FILE.partial)")
    return p


def _grading_instruction() -> str:
    from longflow_jax.grading import BOXED_INSTRUCTION  # light: no jax, no math-verify

    return BOXED_INSTRUCTION


def _check_output_is_a_file(p: argparse.ArgumentParser, output: str) -> None:
    """An existing ``--output`` (links followed) must be a regular file that neither stdout nor
    stderr writes to: the run renames FILE.partial over it, which would replace a device or FIFO
    (``/dev/null`` for every process) and drop text already streamed into a redirected stdout."""
    try:
        st = os.stat(output)
    except FileNotFoundError:
        return
    except OSError as e:
        p.error(f"--output {output}: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        p.error(f"--output {output}: not a regular file (a device, FIFO or socket); the run writes "
                f"FILE.partial and renames it over FILE, so give a regular file name")
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        try:
            st_stream = os.fstat(stream.fileno())
        except (AttributeError, OSError, ValueError):  # replaced or closed streams (tests, notebooks)
            continue
        if (st_stream.st_dev, st_stream.st_ino) == (st.st_dev, st.st_ino):
            p.error(f"--output {output} is the file {name} is redirected to; the run would replace "
                    f"it: drop --output or redirect {name} elsewhere")


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> SamplingParams:
    """Reject bad values before anything heavy (model load, compile) starts; return the SamplingParams."""
    finite = math.isfinite
    if a.policy == "full" and (a.budget is not None or a.compression is not None):
        p.error("--budget/--compression apply to the longflow policies; --policy full keeps every token")
    if a.budget is not None and a.budget < 2:
        p.error(f"--budget must be >= 2, got {a.budget}")
    if a.compression is not None and not (finite(a.compression) and 0 < a.compression < 1):
        p.error(f"--compression must be in (0, 1) (fraction evicted), got {a.compression}")
    if not 1 <= a.max_new_tokens < 2**31:
        p.error(f"--max-new-tokens must be in [1, 2**31 - 1], got {a.max_new_tokens}")
    if not 0 <= a.min_new_tokens <= a.max_new_tokens:
        p.error(f"--min-new-tokens must be in [0, --max-new-tokens] = [0, {a.max_new_tokens}], "
                f"got {a.min_new_tokens}")
    if a.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {a.batch_size}")
    if not 0 <= a.seed < 2**31:
        p.error(f"--seed must be in [0, 2**31 - 1], got {a.seed}")
    if a.jsonl is None and (a.limit is not None or a.field is not None or a.answer_field is not None):
        given = [f for f, v in (("--limit", a.limit), ("--field", a.field),
                                ("--answer-field", a.answer_field)) if v is not None]
        p.error(f"{', '.join(given)}: --limit, --field and --answer-field apply to --jsonl only")
    for flag, value, example in (("--field", a.field, "question"),
                                 ("--answer-field", a.answer_field, "true_answer")):
        if value is not None and not value.strip():
            p.error(f"{flag} must name a key of the JSON records (e.g. {example}), got an empty string")
    if a.answer_field is not None and a.answer_field == (a.field or "question"):
        p.error(f"--answer-field {a.answer_field!r} is also the prompt field (--field): the model would "
                f"read the answer; name the field that holds the reference answer")
    if a.answer_field is not None:
        try:
            import math_verify  # noqa: F401
        except ImportError:
            p.error("--answer-field grades with the math-verify package, which is not installed: "
                    "pip install math-verify")
    if a.limit is not None and a.limit < 1:
        p.error(f"--limit must be >= 1, got {a.limit}")
    if a.no_chat_template and a.system is not None:
        p.error("--system needs the chat template; drop --no-chat-template")
    if a.model is not None and not Path(a.model).exists():
        p.error(f"--model {a.model}: no such file or folder")
    if a.output is not None:
        out = Path(a.output)
        if not a.output or out.is_dir():
            p.error(f"--output {a.output!r}: give a file name" + (", not a folder" if a.output else ""))
        _check_output_is_a_file(p, a.output)
        target = out.resolve()  # a link is followed: its target is written (see _RecordWriter)
        folder = target.parent
        if not folder.is_dir():
            p.error(f"--output {a.output}: folder does not exist")
        partial = target.with_name(target.name + ".partial")
        if partial.is_dir():
            p.error(f"--output {a.output}: {partial} is a folder (the run writes its records to "
                    f"FILE.partial first); remove it or choose another file name")
        if partial.exists():
            p.error(f"--output {a.output}: {partial} exists (records of an interrupted run?); "
                    f"move or delete it first, it would be overwritten")
        try:  # can we create files there at all (read-only mounts, /proc, permissions)?
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            p.error(f"--output {a.output}: cannot create files in {folder}: {e.strerror}")
        inputs = [x for x in (a.jsonl, a.prompt_file) if x is not None]
        if any(target == Path(x).resolve() for x in inputs):
            p.error(f"--output {a.output} is also the input file: the run would replace it; "
                    f"choose another file name")
    from longflow_jax.generation import check_attn_impl
    from longflow_jax.sampling import SamplingParams

    try:
        check_attn_impl(a.attn_impl)
    except ValueError as e:
        p.error(f"--attn-impl: {e}")
    try:  # the library's own checks (float32 range included), reported with the flag's name
        return SamplingParams.create(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                                     repetition_penalty=a.repetition_penalty)
    except (TypeError, ValueError) as e:
        message = str(e)
        for field in ("temperature", "top_k", "top_p", "repetition_penalty"):
            if message.startswith(field + " "):
                message = "--" + field.replace("_", "-") + message[len(field):]
        p.error(message)


def batch_seeds(seed: int, batches: int) -> list[int]:
    """The PRNG seed of each batch of a run started with ``--seed seed``.

    Batch 0 uses ``seed`` itself (a single prompt samples as ``generate(..., seed=seed)``).
    Batch ``k >= 1`` uses the low 31 bits of NumPy's ``SeedSequence((seed, k))`` (a hash of
    the pair, so batch 1 of ``--seed 0`` does not reuse the stream of ``--seed 1``), drawn
    again from ``SeedSequence((seed, k, attempt))`` in the unlikely case it equals an earlier
    batch's seed.  Every seed lies in ``[0, 2**31 - 1]`` and they are pairwise distinct.

    Raises:
      ValueError: ``seed`` outside ``[0, 2**31 - 1]`` or ``batches`` < 0.
    """
    import numpy as np

    if not 0 <= seed < 2**31 or batches < 0:
        raise ValueError(f"seed must be in [0, 2**31 - 1] and batches >= 0, got {seed}, {batches}")
    seeds: list[int] = []
    for k in range(batches):
        derived, attempt = (seed if k == 0 else None), 0
        while derived is None or derived in seeds:
            entropy = (seed, k) if attempt == 0 else (seed, k, attempt)
            derived = int(np.random.SeedSequence(entropy).generate_state(1)[0]) & (2**31 - 1)
            attempt += 1
        seeds.append(derived)
    return seeds


def _read_text(p: argparse.ArgumentParser, flag: str, path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        p.error(f"{flag} {path}: {e.strerror}")
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""  # Windows editors add one
    try:
        return data[len(bom):].decode("utf-8")
    except UnicodeDecodeError as e:
        p.error(f"{flag} {path} is not UTF-8 text ({e.reason} at byte {e.start + len(bom)})")


def _read_prompts(p: argparse.ArgumentParser,
                  a: argparse.Namespace) -> tuple[list[str], list[str], list[str] | None]:
    """The prompt texts (``--instruction`` not yet appended), where each came from (for
    errors found after tokenising) and, with ``--answer-field``, each record's reference
    answer (else None); every error names the flag (and file, and JSONL line)."""
    if a.prompt is not None:
        if not a.prompt.strip():
            p.error("--prompt is empty")
        return [a.prompt], ["--prompt"], None
    if a.prompt_file is not None:
        text = _read_text(p, "--prompt-file", a.prompt_file)
        if not text.strip():
            p.error(f"--prompt-file {a.prompt_file} is empty")
        return [text], [f"--prompt-file {a.prompt_file}"], None
    field = a.field or "question"
    prompts, sources, answers = [], [], []
    # JSON Lines end at "\n" only: str.splitlines would also cut inside a string at U+2028 and
    # other Unicode line breaks, which JSON allows raw (GPQA's questions hold some).
    for n, line in enumerate(_read_text(p, "--jsonl", a.jsonl).split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:  # JSONDecodeError, or an integer past Python's 4300-digit limit
            p.error(f"--jsonl {a.jsonl} line {n} is not valid JSON: {getattr(e, 'msg', e)}")
        if not isinstance(rec, dict):
            p.error(f"--jsonl {a.jsonl} line {n} is not a JSON object (got a "
                    f"{type(rec).__name__}): each line must be one record")
        if field not in rec:
            p.error(f"--jsonl {a.jsonl} line {n} has no field {field!r} (set --field)")
        if not isinstance(rec[field], str):
            p.error(f"--jsonl {a.jsonl} line {n}: field {field!r} must be a string, "
                    f"got {type(rec[field]).__name__}")
        if not rec[field].strip():
            p.error(f"--jsonl {a.jsonl} line {n}: field {field!r} is empty")
        if a.answer_field is not None:
            if a.answer_field not in rec:
                p.error(f"--jsonl {a.jsonl} line {n} has no field {a.answer_field!r} (--answer-field)")
            answer = rec[a.answer_field]
            if (isinstance(answer, int) and not isinstance(answer, bool)) or \
                    (isinstance(answer, float) and math.isfinite(answer)):
                answer = str(answer)  # a JSON number: 18 -> "18" (NaN / Infinity are refused)
            if not isinstance(answer, str) or not answer.strip():
                p.error(f"--jsonl {a.jsonl} line {n}: the --answer-field {a.answer_field!r} must be a "
                        f"non-empty string or a finite number, got {answer!r}")
            answers.append(answer)
        prompts.append(rec[field])
        sources.append(f"--jsonl {a.jsonl} line {n}")
        if a.limit is not None and len(prompts) >= a.limit:
            break
    if not prompts:
        p.error(f"--jsonl {a.jsonl} holds no records")
    if a.limit is not None and len(prompts) < a.limit:  # so runs meant to compare are seen to differ
        print(f"note: --limit {a.limit}, but --jsonl {a.jsonl} holds only {len(prompts)} records: "
              f"running all {len(prompts)}", file=sys.stderr)
    return prompts, sources, (answers if a.answer_field is not None else None)


def _encode(tokenizer, text: str, chat: bool, system: str | None) -> list[int]:
    if chat and getattr(tokenizer, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": text}]  # None: the template's default system turn, if any
        rendered = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024


def _decode(tokenizer, ids) -> str:
    """Text of ``ids``; a multi-byte character cut off by max-new-tokens (trailing U+FFFD) is dropped."""
    return tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")


class _Streamer:
    """Prints row 0's text as chunks arrive, holding back an incomplete UTF-8 character."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.shown = tokenizer, [], 0

    def __call__(self, tokens) -> None:
        self.ids.extend(int(t) for t in tokens[0] if t >= 0)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        # A multi-byte character split across chunks decodes as U+FFFD until its last byte arrives.
        stable = len(text.rstrip("\ufffd"))
        print(text[self.shown: stable], end="", flush=True)
        self.shown = max(self.shown, stable)

    def finish(self) -> None:
        print(_decode(self.tokenizer, self.ids)[self.shown:], flush=True)


def _json_line(record: dict) -> str:
    """One JSON Lines record, non-ASCII text kept readable; the three characters that JSON
    leaves raw but line splitters such as Python's ``str.splitlines`` break on (U+0085,
    U+2028, U+2029) are escaped, so every reader sees one record per line."""
    text = json.dumps(record, ensure_ascii=False)
    return text.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class _RecordWriter:
    """JSON lines written to FILE.partial as batches finish, renamed to FILE when the run completes.

    Without a file, records go to stdout when ``echo`` (batches), nowhere when
    the text was already streamed.
    """

    def __init__(self, path: str | None, echo: bool):
        self.echo = echo
        self.path = Path(path).resolve() if path else None  # a link: write its target
        self.partial = self.path.with_name(self.path.name + ".partial") if self.path else None
        self.file = open(self.partial, "w", encoding="utf-8") if self.partial else None

    def write(self, records: list[dict]) -> None:
        if self.file is None:
            for r in records if self.echo else ():
                print(_json_line(r))
            return
        for r in records:
            self.file.write(_json_line(r) + "\n")
        self.file.flush()

    def close(self, complete: bool) -> None:
        if self.file is None:
            return
        self.file.close()
        if complete:
            os.replace(self.partial, self.path)
        elif self.partial.stat().st_size == 0:
            self.partial.unlink()
        else:
            print(f"interrupted: finished records kept in {self.partial}", file=sys.stderr)


def _save_checkpoint(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    """``--save-checkpoint DIR``: load ``--model`` and write it as an Orbax checkpoint."""
    if a.prompt is not None or a.prompt_file is not None or a.jsonl is not None:
        p.error("--save-checkpoint converts a model and exits; it takes no --prompt/--prompt-file/--jsonl")
    ignored = [f"--{k.replace('_', '-')}" for k, v in vars(a).items()
               if k not in ("model", "dtype", "save_checkpoint") and v != p.get_default(k)]
    if ignored:
        p.error(f"--save-checkpoint takes only --model and --dtype; got also {', '.join(ignored)}")
    from longflow_jax.checkpointing import check_target, save_checkpoint, stored_dtype
    from longflow_jax.config import UnsupportedModelError
    from longflow_jax.loading import ModelLoadError, load_model

    try:  # before the (slow) model load
        target = check_target(a.save_checkpoint)
    except FileExistsError as e:
        p.error(f"--save-checkpoint: {e}")
    try:
        model = load_model(a.model, dtype=a.dtype)
    except (ModelLoadError, UnsupportedModelError) as e:
        p.error(f"--model: {e}")
    path = save_checkpoint(model, target)
    print(f"saved {model.source} ({stored_dtype(model.params)}) to {path}; "
          f"load it with --model {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``longflow-sample`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
      0 when every prompt was generated (or ``--save-checkpoint`` wrote the
      checkpoint); 130 when interrupted with Ctrl-C (finished records stay in
      ``FILE.partial``).

    Raises:
      SystemExit: code 2 for a bad flag value, input file, model or budget
        (argparse's message names the flag; raised before any model load or
        compile where the value does not depend on the model), code 0 for
        ``--help``.
    """
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.save_checkpoint is not None:
        return _save_checkpoint(parser, a)
    if a.prompt is None and a.prompt_file is None and a.jsonl is None:
        parser.error("one of the arguments --prompt --prompt-file --jsonl is required "
                     "(or --save-checkpoint DIR)")
    sampling = _check_args(parser, a)  # the validated SamplingParams
    prompts, sources, answers = _read_prompts(parser, a)
    instruction = a.instruction if a.instruction is not None else (
        _grading_instruction() if answers is not None else "")
    if instruction.strip():
        prompts = [f"{text}\n\n{instruction}" for text in prompts]
    starts = range(0, len(prompts), a.batch_size)
    seeds = batch_seeds(a.seed, len(starts))  # each in [0, 2**31 - 1] (--seed was checked above)

    # Heavy imports only after the arguments are known to be good.
    from tqdm.auto import tqdm

    from longflow_jax.config import UnsupportedModelError
    from longflow_jax.generation import generate, resolve_budget
    from longflow_jax.grading import grade
    from longflow_jax.loading import ModelLoadError, load_model
    try:
        model = load_model(a.model, dtype=a.dtype)
    except (ModelLoadError, UnsupportedModelError) as e:
        parser.error(f"--model: {e}")
    tok = model.tokenizer
    context = model.cfg.max_position_embeddings
    encoded = [_encode(tok, t, not a.no_chat_template, a.system) for t in prompts]
    budget = a.budget if (a.budget is not None or a.compression is not None or a.policy == "full") else 128
    for i, ids in enumerate(encoded):
        if len(ids) > context:
            parser.error(f"{sources[i]}{' with the instruction (--instruction)' if instruction.strip() else ''} "
                         f"has {len(ids)} tokens, longer than the model's context "
                         f"({context})")
    try:  # validate budget against the model before compiling anything
        for start in range(0, len(encoded), a.batch_size):
            longest = max(map(len, encoded[start: start + a.batch_size]))
            resolve_budget(model.cfg, a.policy, longest, a.max_new_tokens, budget, a.compression)
    except ValueError as e:
        if a.compression is not None and str(e).startswith("budget"):
            parser.error(f"--compression {a.compression} sets budget = round((1 - F) x (longest prompt + "
                         f"--max-new-tokens)) per batch, and that {e}")
        flag = "--compression" if a.compression is not None else "--budget"
        parser.error(f"{flag}: {e}" if str(e).startswith(("budget", "compression")) else str(e))
    need = max(map(len, encoded)) + a.max_new_tokens
    if a.policy != "full" and a.compression is None and budget > need:
        print(f"note: --budget {budget} exceeds the longest prompt + --max-new-tokens ({need}): "
              f"nothing will be evicted, and the buffer is {budget - need} "
              f"slot{'s' if budget - need > 1 else ''} larger than "
              f"this run can fill", file=sys.stderr)
    if need > context:
        print(f"note: prompt + max-new-tokens exceeds the model's context ({context}); the KV buffer stays "
              "fixed, positions beyond the context rely on RoPE extrapolation", file=sys.stderr)

    sampling_record = {"do_sample": sampling.do_sample, "temperature": a.temperature, "top_k": a.top_k,
                       "top_p": a.top_p, "repetition_penalty": a.repetition_penalty,
                       "min_new_tokens": a.min_new_tokens, "max_new_tokens": a.max_new_tokens}
    stream = len(encoded) == 1
    if a.output is not None and Path(a.output).exists():
        print(f"note: {a.output} exists; it will be replaced when the run completes", file=sys.stderr)
    writer = _RecordWriter(a.output, echo=not stream)
    totals = {"prompt": 0, "generated": 0, "prefill_s": 0.0, "decode_s": 0.0, "evicted": False,
              "graded": 0, "correct": 0, "no_answer": 0, "length": 0}
    budgets, last = set(), None
    bar = None if stream else tqdm(total=len(encoded), desc="prompts", unit="prompt", file=sys.stderr)
    complete = False
    try:
        for start, seed in zip(starts, seeds):
            batch = encoded[start: start + a.batch_size]
            streamer = _Streamer(tok) if stream else None
            with warnings.catch_warnings():  # the note above already said it, once
                warnings.filterwarnings("ignore", message=r"prompt \+ max_new_tokens .* exceeds the model")
                res = generate(model.params, model.cfg, batch, max_new_tokens=a.max_new_tokens,
                               policy=a.policy, budget=budget, compression=a.compression,
                               sampling=sampling, stop_ids=model.stop_ids, seed=seed,
                               min_new_tokens=a.min_new_tokens, attn_impl=a.attn_impl,
                               on_chunk=streamer)
            if streamer is not None:
                streamer.finish()
            last = res
            budgets.add(res.budget)
            totals["prompt"] += sum(res.prompt_tokens)
            totals["generated"] += res.generated_tokens
            totals["prefill_s"] += res.prefill_seconds
            totals["decode_s"] += res.decode_seconds
            totals["evicted"] |= res.evicted
            records = [{"index": start + j, "prompt": prompts[start + j],
                        "completion": _decode(tok, ids),
                        "prompt_tokens": res.prompt_tokens[j], "generated_tokens": len(ids),
                        # "stop": a stop token (EOS / end of turn) ended the row; "length":
                        # --max-new-tokens did (the terms of HF / OpenAI APIs)
                        "finish_reason": "stop" if ids and ids[-1] in model.stop_ids else "length",
                        "policy": a.policy, "budget": res.budget, "seed": seed,
                        "sampling": sampling_record}
                       for j, ids in enumerate(res.tokens)]
            if answers is not None:
                for r in records:
                    g = grade(r["completion"], answers[r["index"]])
                    r.update(true_answer=answers[r["index"]], extracted_answer=g.extracted,
                             correct=g.correct)
                    totals["graded"] += 1
                    totals["correct"] += g.correct
                    totals["no_answer"] += g.extracted is None
                    totals["length"] += r["finish_reason"] == "length"
            writer.write(records)
            if bar is not None:
                bar.update(len(batch))
        complete = True
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        return 130
    finally:
        writer.close(complete)
        if bar is not None:
            bar.close()

    span = f"{min(budgets)}-{max(budgets)}" if len(budgets) > 1 else str(last.budget)
    print("\n--- summary ---", file=sys.stderr)
    print(f"model            {model.source}", file=sys.stderr)
    print(f"policy           {a.policy}, budget {span} slots/layer"
          + ("" if totals["evicted"] or a.policy == "full" else " (prompt + output fit: nothing was evicted)"),
          file=sys.stderr)
    print(f"prompt tokens    {totals['prompt']}", file=sys.stderr)
    print(f"generated tokens {totals['generated']}", file=sys.stderr)
    print(f"prefill          {totals['prompt'] / max(totals['prefill_s'], 1e-9):.1f} tokens/s "
          f"({totals['prefill_s']:.2f} s, compile included)", file=sys.stderr)
    print(f"decode           {totals['generated'] / max(totals['decode_s'], 1e-9):.1f} tokens/s "
          f"({totals['decode_s']:.2f} s, compile included)", file=sys.stderr)
    # The buffer is sized before decoding (padded prompt bucket + max-new-tokens for "full"), the full
    # cache from the tokens actually held, so a row that stops early can make the buffer the larger.
    print(f"KV buffer        {_fmt_bytes(last.buffer_bytes)} (fixed before decoding) vs full cache "
          f"{_fmt_bytes(last.full_cache_bytes)} for the last batch's tokens", file=sys.stderr)
    if answers is not None:
        n = totals["graded"]
        print(f"accuracy         {totals['correct']} / {n} = {100 * totals['correct'] / n:.1f}% "
              f"(Math-Verify against --answer-field {a.answer_field}; no answer found in "
              f"{totals['no_answer']}; {totals['length']} ended at --max-new-tokens)", file=sys.stderr)
    return 0


def run() -> None:
    """The ``longflow-sample`` console script: ``main()``, then exit with its code.

    After Ctrl-C (code 130) it leaves through ``os._exit``: the interpreter's normal
    teardown can crash (SIGSEGV) while XLA's threads still run the abandoned step, and
    everything worth keeping (``FILE.partial``, the streams) is already flushed."""
    try:
        code = main()
    except KeyboardInterrupt:  # before or after the generation loop (which returns 130 itself)
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        code = 130
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    run()
