"""``longflow-sample`` on a tiny checkpoint: batches, output file, summary, and early errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_tiny_checkpoint
from longflow_jax import cli
from longflow_jax.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli_llama")
    make_tiny_checkpoint("llama", str(path), seed=2)
    return path


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_output_may_not_replace_the_input_file(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "w5 w6"}) + "\n")
    for source in (["--jsonl", str(data)], ["--prompt-file", str(data)]):
        with pytest.raises(SystemExit) as e:
            main(source + ["--output", str(tmp_path / "." / "q.jsonl")])
        assert e.value.code == 2 and "is also the input file" in capsys.readouterr().err
    assert data.read_text() == json.dumps({"question": "w5 w6"}) + "\n"


def test_jsonl_batch_writes_one_record_per_prompt(model_dir, tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"w5 w{i} w9 w12", "true_answer": "1"}) for i in range(3, 8)))
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = _run(capsys, "--model", str(model_dir), "--jsonl", str(data), "--limit", "3",
                                "--batch-size", "2", "--budget", "8", "--max-new-tokens", "12", "--min-new-tokens", "12",
                                "--temperature", "0.8", "--top-p", "0.9", "--output", str(out), "--attn-impl", "xla")
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert all(r["generated_tokens"] == 12 for r in records)
    assert "generated tokens 36" in stderr and "budget 8 slots/layer" in stderr
    assert all(r["budget"] == 8 and r["policy"] == "longflow" for r in records)
    assert all(r["finish_reason"] == "length" for r in records)  # min = max new tokens: no stop
    assert [r["seed"] for r in records] == [records[0]["seed"]] * 2 + [records[2]["seed"]]
    assert records[0]["seed"] == 0 and records[2]["seed"] != 0  # one seed per batch (--seed 0)
    assert records[0]["sampling"] == {"do_sample": True, "temperature": 0.8, "top_k": 0, "top_p": 0.9,
                                      "repetition_penalty": 1.0, "min_new_tokens": 12,
                                      "max_new_tokens": 12}
    assert not (tmp_path / "out.jsonl.partial").exists()
    assert out.stat().st_mode & 0o044  # readable by group/others under the default umask
    assert "tokens/s" in stderr and "KV buffer" in stderr and "note: --limit" not in stderr


def test_limit_past_the_file_says_so(tmp_path, capsys):
    """--limit larger than the file runs every record and says how many (runs meant to compare differ)."""
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"q{i}"}) for i in range(2)) + "\n")
    parser = cli.build_parser()
    for limit, note in ((5, True), (2, False), (1, False)):
        prompts, _, _ = cli._read_prompts(parser, parser.parse_args(["--jsonl", str(data), "--limit", str(limit)]))
        assert prompts == ["q0", "q1"][:limit]
        err = capsys.readouterr().err
        assert (f"note: --limit 5, but --jsonl {data} holds only 2 records: running all 2" in err) == note, err


def test_single_prompt_streams_text(model_dir, capsys):
    code, stdout, stderr = _run(capsys, "--model", str(model_dir), "--prompt", "w7 w8 w9", "--compression", "0.5",
                                "--max-new-tokens", "10", "--attn-impl", "xla")
    assert code == 0
    assert len(stdout.split()) >= 5  # generated words were printed as they came
    assert '"completion"' not in stdout  # streamed text only, no JSON record
    assert "generated tokens" in stderr and "nothing will be evicted" not in stderr
    # A budget above prompt + output is accepted with a note (16 = the prompt's 3 tokens + 13).
    code, _, stderr = _run(capsys, "--model", str(model_dir), "--prompt", "w7 w8 w9", "--no-chat-template",
                           "--budget", "40", "--max-new-tokens", "13", "--attn-impl", "xla")
    assert code == 0
    assert "note: --budget 40 exceeds the longest prompt + --max-new-tokens (16)" in stderr
    assert "24 slots larger" in stderr and "nothing was evicted" in stderr


@pytest.mark.parametrize("args, message", [
    (["--budget", "1"], "--budget must be >= 2"),
    (["--compression", "1.5"], "--compression must be in (0, 1)"),
    (["--compression", "0"], "--compression must be in (0, 1)"),
    (["--policy", "h2o"], "invalid choice: 'h2o'"),
    (["--policy", "full", "--budget", "64"], "--policy full keeps every token"),
    (["--compression", "nan"], "--compression must be in (0, 1)"),
    (["--temperature", "-1"], "--temperature must be a finite number >= 0"),
    (["--temperature", "nan"], "--temperature must be a finite number >= 0"),
    (["--repetition-penalty", "nan"], "--repetition-penalty must be a finite number > 0"),
    (["--seed", "99999999999"], "--seed must be in [0, 2**31 - 1]"),
    (["--limit", "3"], "--limit: --limit, --field and --answer-field apply to --jsonl only"),
    (["--jsonl", "q.jsonl", "--field", ""], "--field must name a key of the JSON records"),
    (["--no-chat-template", "--system", "be brief"], "--system needs the chat template"),
    (["--output", ""], "--output '': give a file name"),
    (["--output", "/tmp"], "give a file name, not a folder"),
    (["--output", "/proc/answers.jsonl"], "--output /proc/answers.jsonl: cannot create files in /proc"),
    (["--attn-impl", "triton"], "--attn-impl: attn_impl='triton' needs a CUDA GPU"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--top-k", "-3"], "--top-k must be an integer in [0, 2**31 - 1]"),
    (["--top-k", "99999999999999"], "--top-k must be an integer in [0, 2**31 - 1]"),
    (["--temperature", "1e39"], "--temperature must be a finite number >= 0 (0 = greedy), as a normal float32"),
    (["--temperature", "1e-45"], "1e-45 would become 0, a subnormal or inf"),
    (["--top-p", "1e-46"], "--top-p must be in (0, 1], as a normal float32"),
    (["--repetition-penalty", "1e39"], "--repetition-penalty must be a finite number > 0 (1 disables), as a normal"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be in [1, 2**31 - 1]"),
    (["--max-new-tokens", "3000000000"], "--max-new-tokens must be in [1, 2**31 - 1], got 3000000000"),
    (["--max-new-tokens", "3000000000", "--min-new-tokens", "3000000000"], "--max-new-tokens must be in [1, 2**31 - 1]"),
    (["--max-new-tokens", "8", "--min-new-tokens", "3000000000"], "--min-new-tokens must be in [0, --max-new-tokens] = [0, 8]"),
    (["--model", "/nonexistent/model"], "no such file or folder"),
    (["--prompt", "   "], "--prompt is empty"),
])
def test_bad_arguments_exit_before_loading(args, message, capsys):
    argv = args if {"--prompt", "--jsonl"} & set(args) else ["--prompt", "w5 w6"] + args
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_output_checks_before_loading_and_notice_on_replace(model_dir, tmp_path, capsys):
    """FILE.partial being a folder stops the run before loading; an existing FILE is named before it
    is replaced (never silently); a UTF-8 BOM in --jsonl (Windows editors) is not part of the text."""
    out = tmp_path / "a.jsonl"
    (tmp_path / "a.jsonl.partial").mkdir()
    with pytest.raises(SystemExit):
        main(["--prompt", "w5", "--output", str(out)])
    assert "a.jsonl.partial is a folder" in capsys.readouterr().err
    data = tmp_path / "q.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + json.dumps({"question": "w5 w6"}).encode() + b"\n")
    out = tmp_path / "b.jsonl"
    out.write_text("old\n")
    rc = main(["--model", str(model_dir), "--jsonl", str(data), "--budget", "8", "--max-new-tokens", "2",
               "--attn-impl", "xla", "--output", str(out)])
    assert rc == 0
    assert f"note: {out} exists; it will be replaced" in capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["w5 w6"]


def test_leftover_partial_file_and_compression_budget_errors(model_dir, tmp_path, capsys):
    """A FILE.partial left by an interrupted run is never overwritten silently; a --compression whose
    derived budget is out of range says how the budget was derived."""
    out = tmp_path / "c.jsonl"
    (tmp_path / "c.jsonl.partial").write_text('{"index": 0}\n')
    with pytest.raises(SystemExit):
        main(["--prompt", "w5", "--output", str(out)])
    assert "c.jsonl.partial exists (records of an interrupted run?)" in capsys.readouterr().err
    assert (tmp_path / "c.jsonl.partial").read_text() == '{"index": 0}\n'
    with pytest.raises(SystemExit):
        main(["--model", str(model_dir), "--prompt", "w5", "--compression", "0.1", "--max-new-tokens", "10000"])
    err = capsys.readouterr().err
    assert "--compression 0.1 sets budget = round((1 - F) x (longest prompt + --max-new-tokens))" in err
    assert "budget must be an integer in [2, 528]" in err and "got 900" in err  # 0.9 x (prompt + 10000)


def test_moved_driver_names_stay_importable_from_decode_loop():
    import longflow_jax.decode_loop as loop
    from longflow_jax import generation

    with pytest.warns(DeprecationWarning, match="moved to longflow_jax.generation.generate"):
        assert loop.generate is generation.generate
    with pytest.raises(AttributeError):
        loop.no_such_name


def test_budget_larger_than_context_and_long_prompt(model_dir, tmp_path, capsys):
    out = tmp_path / "never.jsonl"
    with pytest.raises(SystemExit):
        main(["--model", str(model_dir), "--prompt", "w5", "--budget", "4096", "--output", str(out)])
    # The largest budget is the padded prompt length (16) + the context (512), as in generate and start.
    assert "--budget: budget must be an integer in [2, 528]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", str(model_dir), "--prompt", " ".join(["w5"] * 600), "--no-chat-template", "--output", str(out)])
    err = capsys.readouterr().err
    assert "--prompt has" in err and "longer than the model's context (512)" in err
    data = tmp_path / "q.jsonl"  # a JSONL prompt is named by its line (blank lines counted)
    data.write_text(json.dumps({"question": "w5"}) + "\n\n"
                    + json.dumps({"question": " ".join(["w5"] * 600)}) + "\n")
    with pytest.raises(SystemExit):
        main(["--model", str(model_dir), "--jsonl", str(data), "--no-chat-template", "--output", str(out)])
    assert f"--jsonl {data} line 3 has" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_non_utf8_and_non_string_inputs(tmp_path, capsys):
    bad = tmp_path / "q.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    with pytest.raises(SystemExit):
        main(["--prompt-file", str(bad)])
    assert "is not UTF-8 text" in capsys.readouterr().err
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": None}) + "\n")
    with pytest.raises(SystemExit):
        main(["--jsonl", str(data)])
    assert "field 'question' must be a string, got NoneType" in capsys.readouterr().err


def test_streamer_holds_back_split_multibyte_characters(capsys):
    """A character whose UTF-8 bytes straddle two chunks is printed once, whole."""
    from longflow_jax.cli import _Streamer

    class ByteTokenizer:  # token id = one UTF-8 byte, like a byte-level BPE's fallback tokens
        def decode(self, ids, skip_special_tokens=True):
            return bytes(ids).decode("utf-8", errors="replace")

    text = "Wie viel ist 3·3? 答えは 🦆🦆"
    data = list(text.encode())
    streamer = _Streamer(ByteTokenizer())
    for i in range(0, len(data), 5):  # chunks of 5 bytes split most multi-byte characters
        streamer(np.array([data[i: i + 5]]))
    streamer.finish()
    assert capsys.readouterr().out == text + "\n"
    # Output cut inside the last character (max-new-tokens reached): the fragment is dropped.
    cut = _Streamer(ByteTokenizer())
    cut(np.array([data[:-2]]))
    cut.finish()
    assert capsys.readouterr().out == text[:-1] + "\n"


def test_empty_prompts_name_the_flag_file_and_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\t\n")
    with pytest.raises(SystemExit) as e:
        main(["--prompt-file", str(empty)])
    assert e.value.code == 2
    assert f"--prompt-file {empty} is empty" in capsys.readouterr().err
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "w5"}) + "\n\n" + json.dumps({"question": "  "}) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["--jsonl", str(data)])
    assert e.value.code == 2
    assert f"--jsonl {data} line 3: field 'question' is empty" in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    for flag, default in (("--max-new-tokens", 512), ("--min-new-tokens", 0), ("--batch-size", 1)):
        help_of_flag = text.split(flag.upper().lstrip("-").replace("-", "_"), 2)[2].split(" --")[0]
        assert f"(default: {default})" in help_of_flag, (flag, help_of_flag)


def test_jsonl_without_field(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"problem": "x"}) + "\n")
    with pytest.raises(SystemExit):
        main(["--jsonl", str(data)])
    assert "has no field 'question'" in capsys.readouterr().err
    data.write_text(json.dumps({"question": "x"}) + "\n" + json.dumps(["x"]) + "\n")
    with pytest.raises(SystemExit):
        main(["--jsonl", str(data)])
    assert "line 2 is not a JSON object (got a list)" in capsys.readouterr().err


def test_unsupported_architecture(model_dir, tmp_path, capsys):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit):
        main(["--model", str(d), "--prompt", "w5"])
    assert "'GPT2LMHeadModel' is not supported" in capsys.readouterr().err


def test_interrupted_run_keeps_finished_records_in_partial_file(model_dir, tmp_path, capsys, monkeypatch):
    import longflow_jax.generation as loop

    real, calls = loop.generate, []

    def flaky_generate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "generate", flaky_generate)
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"w5 w{i}"}) for i in range(3, 7)))
    out = tmp_path / "out.jsonl"
    rc = main(["--model", str(model_dir), "--jsonl", str(data), "--batch-size", "2", "--budget", "8",
               "--max-new-tokens", "3", "--attn-impl", "xla", "--output", str(out)])
    assert rc == 130  # Ctrl-C: a one-line message and the shell's exit status, no traceback
    assert not out.exists()
    partial = [json.loads(line) for line in (tmp_path / "out.jsonl.partial").read_text().splitlines()]
    assert [r["index"] for r in partial] == [0, 1]
    err = capsys.readouterr().err
    assert "finished records kept in" in err and "interrupted (Ctrl-C)" in err


def test_every_batch_gets_its_own_valid_seed(model_dir, tmp_path, capsys, monkeypatch):
    """Batch k of a run samples with batch_seeds(--seed, ...)[k]: --seed itself first, then seeds hashed
    from (seed, k), all in [0, 2**31 - 1] (--seed 2**31 - 1 used to overflow in batch 2 and crash)
    and not the first seed of a neighbouring --seed (batch 2 of --seed 0 used --seed 2's stream)."""
    import longflow_jax.generation as loop
    from longflow_jax.cli import batch_seeds

    real, seeds = loop.generate, []

    def recording(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "generate", recording)
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"w5 w{i}"}) for i in range(3, 7)))
    runs = {}
    for seed in (2**31 - 1, 0, 2):  # 4 prompts, 2 per batch: the shapes of the tests above
        seeds.clear()
        out = tmp_path / f"out{seed}.jsonl"
        rc = main(["--model", str(model_dir), "--jsonl", str(data), "--batch-size", "2", "--budget", "8",
                   "--max-new-tokens", "3", "--temperature", "0.8", "--seed", str(seed), "--attn-impl", "xla",
                   "--output", str(out)])
        assert rc == 0 and len(out.read_text().splitlines()) == 4
        runs[seed] = list(seeds)
    capsys.readouterr()
    for seed, used in runs.items():
        assert used == batch_seeds(seed, 2) and used[0] == seed and used[1] != seed
        assert all(0 <= s < 2**31 for s in used)
    assert runs[0][1] != runs[2][0]
    many = batch_seeds(2**31 - 1, 1000)
    assert len(set(many)) == 1000 and 0 <= min(many) and max(many) < 2**31
    assert not set(batch_seeds(0, 1000)[1:]) & set(range(1000))  # no --seed s < 1000 shares a stream
    with pytest.raises(ValueError, match="seed must be in"):
        batch_seeds(2**31, 1)


def test_output_to_a_device_fifo_or_redirected_stdout_is_refused(tmp_path, capsys):
    """--output renames FILE.partial over FILE: a device (/dev/null), a FIFO or the file stdout is
    redirected to would be replaced (the first for every process), so each is refused up front."""
    import os
    import stat
    import subprocess
    import sys

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (str(fifo), os.devnull):
        with pytest.raises(SystemExit) as e:
            main(["--prompt", "w5", "--output", target])
        assert e.value.code == 2 and "not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    out = tmp_path / "out.txt"
    with open(out, "w") as stdout:
        proc = subprocess.run([sys.executable, "-m", "longflow_jax.cli", "--prompt", "w5", "--output",
                               str(out)], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2 and "is the file stdout is redirected to" in proc.stderr
    assert not (tmp_path / "out.txt.partial").exists()


def test_finish_reason_says_a_stop_token_ended_the_row(model_dir, tmp_path, capsys, monkeypatch):
    """With every token a stop token, each row ends after its first token: finish_reason "stop"."""
    import dataclasses

    from longflow_jax import loading

    load = loading.load_model

    def every_token_stops(*args, **kwargs):
        model = load(*args, **kwargs)
        return dataclasses.replace(model, stop_ids=tuple(range(model.cfg.vocab_size)))

    monkeypatch.setattr(loading, "load_model", every_token_stops)
    out = tmp_path / "stop.jsonl"
    code, _, _ = _run(capsys, "--model", str(model_dir), "--prompt", "w5 w6", "--budget", "8",
                      "--max-new-tokens", "5", "--output", str(out), "--attn-impl", "xla")
    assert code == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["finish_reason"] == "stop" and record["generated_tokens"] == 1


def test_answer_field_grades_each_record(model_dir, tmp_path, capsys, monkeypatch):
    """--answer-field: each record carries the reference, the extracted answer and Math-Verify's
    verdict; the summary counts them; the boxed-answer instruction is appended unless
    --instruction says otherwise.  The completion text is pinned (a random tiny model writes
    no answers) by replacing the CLI's detokeniser."""
    from longflow_jax import cli
    from longflow_jax.grading import BOXED_INSTRUCTION

    monkeypatch.setattr(cli, "_decode", lambda tok, ids: "w5 w6 so $\\boxed{1}$")
    data = tmp_path / "q.jsonl"
    # a raw U+2028 inside a JSON string is legal JSON (GPQA's questions have some): one record
    rows = [{"question": "w5 w3\u2028w9", "true_answer": "1"}, {"question": "w5 w4", "true_answer": "2"},
            {"question": "w5 w7", "true_answer": 1.0}]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "graded.jsonl"
    common = ["--model", str(model_dir), "--jsonl", str(data), "--answer-field", "true_answer",
              "--budget", "8", "--max-new-tokens", "3", "--attn-impl", "xla"]
    code, _, stderr = _run(capsys, *common, "--batch-size", "2", "--output", str(out))
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["true_answer"] for r in records] == ["1", "2", "1.0"]
    assert [r["extracted_answer"] for r in records] == ["1"] * 3
    assert [r["correct"] for r in records] == [True, False, True]
    assert [r["prompt"] for r in records] == [f"{r['question']}\n\n{BOXED_INSTRUCTION}" for r in rows]
    assert "accuracy         2 / 3 = 66.7%" in stderr and "ended at --max-new-tokens" in stderr

    out2 = tmp_path / "plain.jsonl"
    code, _, stderr = _run(capsys, *common, "--limit", "1", "--instruction", "", "--output", str(out2))
    (record,) = [json.loads(line) for line in out2.read_text().splitlines()]
    assert code == 0 and record["prompt"] == rows[0]["question"] and "1 / 1 = 100.0%" in stderr


@pytest.mark.parametrize("records, flags, message", [
    ([{"question": "w5"}], ["--prompt", "w5", "--answer-field", "true_answer"],
     "--answer-field: --limit, --field and --answer-field apply to --jsonl only"),
    ([{"question": "w5", "true_answer": "1"}, {"question": "w6"}], [], "line 2 has no field 'true_answer'"),
    ([{"question": "w5", "true_answer": ["1"]}], [], "must be a non-empty string or a finite number, got ['1']"),
    ([{"question": "w5", "true_answer": " "}], [], "must be a non-empty string or a finite number, got ' '"),
    ([{"question": "w5", "true_answer": float("nan")}], [], "or a finite number, got nan"),
    ([{"question": "w5", "true_answer": True}], [], "or a finite number, got True"),
    ([{"question": "w5", "true_answer": "1"}], ["--answer-field", "question"], "is also the prompt field"),
    ([{"question": "w5", "true_answer": "1"}], ["--answer-field", ""], "--answer-field must name a key"),
])
def test_answer_field_bad_input_is_named_before_loading(tmp_path, capsys, records, flags, message):
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records))
    source = [] if "--prompt" in flags else ["--jsonl", str(data)]
    flags = flags if any(f.startswith("--answer-field") for f in flags) else \
        flags + ["--answer-field", "true_answer"]
    with pytest.raises(SystemExit) as e:  # --model does not exist: any load would fail differently
        main(source + flags + ["--model", str(tmp_path)])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_console_script_exits_130_after_ctrl_c_anywhere(monkeypatch, capsys):
    """run(): Ctrl-C inside the loop (main returns 130) or outside it (KeyboardInterrupt, e.g.
    while loading) leaves through os._exit(130) -- no interpreter teardown; other codes exit
    normally."""
    from longflow_jax import cli

    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)  # os._exit never returns

    def interrupted_while_loading(argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    for fake_main in (interrupted_while_loading, lambda argv=None: 130):
        monkeypatch.setattr(cli, "main", fake_main)
        with pytest.raises(SystemExit):
            cli.run()
    assert exits == [130, 130] and "interrupted (Ctrl-C)" in capsys.readouterr().err
    monkeypatch.setattr(cli, "main", lambda argv=None: 0)
    with pytest.raises(SystemExit) as e:
        cli.run()
    assert e.value.code == 0 and exits == [130, 130]


def test_answer_field_numbers_of_any_size(tmp_path, capsys):
    """A 401-digit integer answer is read as its digits (no float conversion overflows); one
    past Python's 4300-digit limit is named as invalid JSON on its line."""
    from longflow_jax import cli

    p = cli.build_parser()
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "w5", "true_answer": 10**400}) + "\n")
    _, _, answers = cli._read_prompts(p, p.parse_args(["--jsonl", str(data), "--answer-field", "true_answer"]))
    assert answers == ["1" + "0" * 400]
    data.write_text('{"question": "w5", "true_answer": 1' + "0" * 5000 + "}\n")
    with pytest.raises(SystemExit):
        cli._read_prompts(p, p.parse_args(["--jsonl", str(data), "--answer-field", "true_answer"]))
    assert "line 1 is not valid JSON" in capsys.readouterr().err


def test_system_message_none_empty_and_given():
    """--system absent leaves the template's default; '' is an explicit empty system turn, not absent."""
    class Recorder:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, msgs, add_generation_prompt, tokenize):
            self.msgs = msgs
            return "rendered"

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [len(text)]}

    tok = Recorder()
    user = {"role": "user", "content": "hi"}
    for system, want in ((None, [user]), ("", [{"role": "system", "content": ""}, user]),
                         ("be brief", [{"role": "system", "content": "be brief"}, user])):
        assert cli._encode(tok, "hi", True, system) == [len("rendered")]
        assert tok.msgs == want, system
    assert cli._encode(tok, "hello", False, "ignored") == [5]  # no template: the raw text
