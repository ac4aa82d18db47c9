"""Answer checking for math and multiple-choice benchmarks, through Hugging Face's Math-Verify.

The evaluation path of ``longflow-sample --answer-field`` (README, "Accuracy on math
benchmarks"): each completion's final answer is extracted and compared with the
dataset's reference answer for mathematical equivalence (``\\frac{1}{2}`` = ``0.5``,
``(3, \\pi/2)`` = ``\\left( 3, \\frac{\\pi}{2} \\right)``), never by string equality.
The parsing and the equivalence test are Math-Verify's (``math_verify.parse`` /
``math_verify.verify``, https://github.com/huggingface/Math-Verify); this module
only decides how each side is handed to it:

* the reference answer is LaTeX or a plain number (``../shared/data/math``): it is
  parsed as one LaTeX formula (wrapped in ``$...$`` unless it already is), after
  rewriting a standalone scientific literal such as ``4.5e33`` as
  ``4.5 \\times 10^{33}`` (LaTeX would read ``e`` as Euler's number);
* a reference that is a single capital letter A-J (GPQA's choices) is a multiple
  choice: the completion's answer is taken from ``\\boxed{C}`` or a stated letter
  ("Answer: C");
* the completion's answer is Math-Verify's extraction from the text (``\\boxed{}``
  first -- several boxes are read together as one list, ``\\boxed{3} ... \\boxed{18}``
  as ``3,18`` --, then other LaTeX and plain expressions), after the same rewrite of
  standalone scientific literals (``\\boxed{4.5e33}``).
"""

from __future__ import annotations

import dataclasses
import re
import threading

# Appended to each question by the CLI when grading (the usual instruction of math
# evaluations for reasoning models, e.g. DeepSeek-R1's and Qwen's), so that the final
# answer lands in a \boxed{} that the extraction finds first.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

_CHOICE = re.compile(r"[A-J]")
# A scientific literal standing alone in text or LaTeX (not part of a word or a longer number).
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?!\w|\.\d)")


def _rewrite_scientific(text: str) -> str:
    """``4.5e33`` -> ``4.5 \\times 10^{33}`` wherever such a literal stands alone."""
    return _SCIENTIFIC.sub(lambda m: f"{m[1]} \\times 10^{{{int(m[2])}}}", text)


@dataclasses.dataclass(frozen=True)
class Grade:
    """One graded completion.

    Attributes:
      extracted: the completion's final answer as Math-Verify read it (its text form),
        or None when no answer was found (then ``correct`` is False).
      correct: whether it is mathematically equivalent to the reference answer.
    """

    extracted: str | None
    correct: bool


def _math_verify():
    try:
        import math_verify
    except ImportError as e:  # a runtime dependency; only missing in a broken environment
        raise ImportError("grading needs the math-verify package: pip install math-verify") from e
    return math_verify


def _timeouts() -> dict:
    """Math-Verify's time limits (5 s per parse / comparison; sympy can hang on adversarial
    input) work by ``signal.alarm``, which only the main thread may use: elsewhere (a grading
    thread pool) they are off, as Math-Verify asks."""
    if threading.current_thread() is threading.main_thread():
        return {}
    return {"parsing_timeout": None}


def is_choice(true_answer: str) -> bool:
    """Whether ``true_answer`` is a multiple-choice letter (one of A-J, as in GPQA)."""
    return _CHOICE.fullmatch(true_answer.strip()) is not None


def parse_reference(true_answer: str) -> list:
    """Math-Verify's parse of a dataset's reference answer (see the module docstring).

    Args:
      true_answer: LaTeX (``\\frac{14}{3}``, ``$2^{1009}$``), a plain number (``18``,
        ``4.5e33``) or a choice letter (``C``).

    Returns:
      Math-Verify's parse: a list of the parsed value and its text, empty when
      nothing could be parsed.

    Raises:
      ValueError: ``true_answer`` is not a non-empty string.
    """
    if not isinstance(true_answer, str) or not true_answer.strip():
        raise ValueError(f"true_answer must be a non-empty string, got {true_answer!r}")
    mv = _math_verify()
    text = true_answer.strip()
    if is_choice(text):
        return mv.parse(text, [mv.StringExtractionConfig(strings=tuple("ABCDEFGHIJ"))],
                        **_timeouts())
    text = _rewrite_scientific(text)
    if not (text.startswith("$") or text.startswith("\\(") or text.startswith("\\[")):
        text = f"${text}$"
    return mv.parse(text, **_timeouts())


def grade(completion: str, true_answer: str) -> Grade:
    """Extracts the final answer of ``completion`` and checks it against ``true_answer``.

    Args:
      completion: the model's generated text (str).
      true_answer: the dataset's reference answer (see ``parse_reference``).

    Returns:
      ``Grade(extracted, correct)``. A completion with no recognisable answer (or a
      reference Math-Verify cannot parse) grades as not correct.  Callable from any
      thread; Math-Verify's 5 s time limits apply in the main thread only.

    Raises:
      ValueError: ``completion`` is not a string, or ``true_answer`` is not a
        non-empty string.
    """
    if not isinstance(completion, str):
        raise ValueError(f"completion must be a string, got {type(completion).__name__}")
    mv = _math_verify()
    reference = parse_reference(true_answer)
    if is_choice(true_answer):
        configs = [mv.LatexExtractionConfig(),
                   mv.StringExtractionConfig(strings=tuple("ABCDEFGHIJ"))]
        answer = mv.parse(completion, configs, **_timeouts())
    else:
        answer = mv.parse(_rewrite_scientific(completion), **_timeouts())
    extracted = str(answer[-1]) if answer else None
    verify_limits = {"timeout_seconds": None} if _timeouts() else {}
    correct = bool(reference and answer and mv.verify(reference, answer, **verify_limits))
    return Grade(extracted=extracted, correct=correct)
