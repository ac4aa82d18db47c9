"""Answer checking for math and multiple-choice benchmarks, through Hugging Face's Math-Verify.

The evaluation path of ``longflow-sample --answer-field`` (README, "Accuracy on math
benchmarks"): each completion's final answer is extracted and compared with the
dataset's reference answer for mathematical equivalence (``\\frac{1}{2}`` = ``0.5``,
``(3, \\pi/2)`` = ``\\left( 3, \\frac{\\pi}{2} \\right)``), never by string equality.
The parsing and the equivalence test are Math-Verify's (``math_verify.parse`` /
``math_verify.verify``, https://github.com/huggingface/Math-Verify); this module
only decides how each side is handed to it:

* the completion's answer is what Math-Verify reads in its ``\\boxed{}`` (several boxes
  are read together as one list: ``\\boxed{3} and \\boxed{5}`` as ``3,5``); a completion
  without a box has no answer.  Unboxed statements are not read: Math-Verify's anchors
  ("answer" followed by a number within a sentence or two) also fire on "Maria answered
  45 questions", "the answer is not 60" and on reasoning cut off by max-new-tokens;
* the reference answer is LaTeX or a plain number (``../shared/data/math``): it is
  parsed as one LaTeX formula (wrapped in ``$...$`` unless it already is);
* on both sides a standalone scientific literal such as ``4.5e33`` is read as
  ``4.5*10^33`` (LaTeX would read ``e`` as Euler's number); so ``\\boxed{2e-1}`` means
  0.2, never 2e - 1.  Math-Verify compares numbers rounded to 6 decimal places; for a
  numeric reference below 1 in magnitude the places grow with its leading zeros (6 for
  0.5, 8 for 0.006, 13 for 1.24e-8), else a boxed 0 would pass for Minerva's tiny references;
* a reference ``C``, ``(C)`` or ``\\text{(C)}`` (letters A-J: GPQA, some MATH-500 rows)
  is a multiple choice.  The completion's letter comes from a box that holds just the
  choice (``\\boxed{C}``, ``\\boxed{(c)}``, ``\\boxed{\\text{C}}``, ``\\boxed{C: 14}``), else
  from the last statement "answer is C." / "Answer: (C)" / "**Final Answer:** C" /
  "the correct option is D" whose letter ends the sentence (a bare letter must be a
  capital).  Hedges and lists ("the answer is (C) or (D)", ``\\boxed{A. B. C. D.}``), a
  loose "A", "answer (A) seems low" and "the answer is a combination" are no answer.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading

# Appended to each question by the CLI when grading (the usual instruction of math
# evaluations for reasoning models, e.g. DeepSeek-R1's and Qwen's), so that the final
# answer lands in a \boxed{} that the extraction finds first.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

# A multiple-choice reference: "C", "(C)", "\text{(C)}".
_CHOICE_REFERENCE = re.compile(r"(?:\\text\{)?\(?([A-J])\)?\}?")
# A scientific literal standing alone (not part of a word or a longer number).
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?!\w|\.\d)")
# A box holding one choice: "C", "(c)", "\text{C}", "\text{(C)}" (Math-Verify writes \textbf so),
# "\mathrm{C}", or the letter and its option's text ("C: 14", "(C) 14") in which no other
# standalone letter A-J appears (that would be a list or a hedge).
_CHOICE_BOX = re.compile(r"\s*(?:\\(?:text|textbf|mathrm)\{)?\s*(\(([A-Ja-j])\)|([A-Ja-j]))\s*\}?"
                         r"(?:\s*[:.]?\s+(?P<rest>.*?))?\s*", re.S)
_OTHER_LETTER = re.compile(r"(?<![\w\\])[A-J](?!\w)")
# "answer is (C).", "Answer: C", "**Final Answer:** C", "correct option is **(c)**": "answer",
# "option" or "choice", then "is" or a colon, then the letter -- in parentheses (any case) or a
# bare capital -- and then the end of the sentence (not "answer is (C) or (D)", "answer is a
# combination", "answer (A) seems low", "answer: A) 2.5 eV").
_CHOICE_ANCHOR = re.compile(
    r"\b(?i:answer|option|choice)(?:\*\*)?\s*(?:(?i:is)|[:：])\s*(?:\*\*)?\s*"
    r"(?:\(([A-Ja-j])\)|([A-J]))(?:\*\*)?(?=\s*(?:$|[.!]?\s*(?:$|\n)|\.\s))")


@dataclasses.dataclass(frozen=True)
class Grade:
    """One graded completion.

    Attributes:
      extracted: the completion's final answer as Math-Verify read it (its text form, after
        the rewrite of scientific literals; for a multiple choice the capital letter), or
        None when no answer was found (then ``correct`` is False).
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


def _limits(name: str) -> dict:
    """Math-Verify's time limits (5 s per parse / comparison; sympy can hang on adversarial
    input) work by ``signal.alarm``, which only the main thread may use: elsewhere (a grading
    thread pool) ``name`` (``parsing_timeout`` / ``timeout_seconds``) is turned off, as
    Math-Verify asks."""
    return {} if threading.current_thread() is threading.main_thread() else {name: None}


def _boxed(text: str) -> list:
    """Math-Verify's reading of the ``\\boxed{}`` answer of ``text`` (empty without a box)."""
    if "\\boxed" not in text:  # else Math-Verify would fall back to its loose anchors
        return []
    mv = _math_verify()
    configs = [mv.LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    return mv.parse(text, configs, **_limits("parsing_timeout"))


def _rewrite_scientific(text: str) -> str:
    """``4.5e33`` -> ``4.5*10^33`` wherever such a literal stands alone (module docstring)."""
    def as_power(m: re.Match) -> str:
        # "10^33" reads right in text and LaTeX (also before a full stop, where Math-Verify
        # misses "10^(33)."); a negative exponent needs "10^(-3)" (LaTeX: "10^-3" = 10^{-}3).
        exponent = int(m[2])
        return f"{m[1]}*10^{exponent}" if exponent >= 0 else f"{m[1]}*10^({exponent})"

    return _SCIENTIFIC.sub(as_power, text)


def _decimal_places(reference: list) -> int:
    """Math-Verify's ``float_rounding`` for a reference: 6 places, plus the leading zeros of a
    number below 1 in magnitude (module docstring)."""
    try:
        value = abs(float(reference[0]))
    except (TypeError, ValueError, IndexError, OverflowError):  # not a plain number
        return 6
    zeros = math.ceil(-math.log10(value)) - 1 if 0 < value < 1 else 0  # 0.006: 2, 0.5: 0
    return 6 + max(zeros, 0)


def _check_reference(true_answer) -> str:
    if not isinstance(true_answer, str) or not true_answer.strip():
        raise ValueError(f"true_answer must be a non-empty string, got {true_answer!r}")
    return true_answer.strip()


def choice_of(true_answer: str) -> str | None:
    """The letter of a multiple-choice reference (``C``, ``(C)``, ``\\text{(C)}``; A-J), else None.

    Raises:
      ValueError: ``true_answer`` is not a non-empty string.
    """
    match = _CHOICE_REFERENCE.fullmatch(_check_reference(true_answer))
    return match[1] if match else None


def parse_reference(true_answer: str) -> list:
    """Math-Verify's parse of a dataset's reference answer (module docstring; a multiple
    choice, ``choice_of``, is compared by its letter instead).

    Args:
      true_answer: LaTeX (``\\frac{14}{3}``, ``$2^{1009}$``) or a plain number (``18``,
        ``4.5e33``).

    Returns:
      Math-Verify's parse: a list of the parsed value and its text, empty when
      nothing could be parsed.

    Raises:
      ValueError: ``true_answer`` is not a non-empty string.
    """
    text = _rewrite_scientific(_check_reference(true_answer))
    if not text.startswith(("$", "\\(", "\\[")):
        text = f"${text}$"
    return _math_verify().parse(text, **_limits("parsing_timeout"))


def _choice_letter(completion: str) -> str | None:
    """The letter a completion answers a multiple choice with (module docstring), or None."""
    boxed = _boxed(completion)
    if boxed:
        box = _CHOICE_BOX.fullmatch(str(boxed[-1]))
        if box and not (box["rest"] and _OTHER_LETTER.search(box["rest"])):
            return (box[2] or box[3]).upper()
        if box or not re.fullmatch(r"[\d\s.,+\-*/^{}()\\a-z]*", str(boxed[-1])):
            return None  # a list, a hedge or text: no answer (a number: a stated letter may follow)
    anchored = _CHOICE_ANCHOR.findall(completion)  # [(letter in parentheses, bare capital)]
    return "".join(anchored[-1]).upper() if anchored else None


def grade(completion: str, true_answer: str) -> Grade:
    """Extracts the final answer of ``completion`` and checks it against ``true_answer``.

    Args:
      completion: the model's generated text (str).
      true_answer: the dataset's reference answer: LaTeX, a number written as text, or
        a choice letter A-J (see ``choice_of`` and the module docstring).

    Returns:
      ``Grade(extracted, correct)``. A completion with no answer (no box; for a multiple
      choice neither a box nor an anchored letter), or a reference Math-Verify cannot
      parse, grades as not correct.  Callable from any thread; Math-Verify's 5 s time
      limits apply in the main thread only.

    Raises:
      ValueError: ``completion`` is not a string, or ``true_answer`` is not a
        non-empty string.
    """
    if not isinstance(completion, str):
        raise ValueError(f"completion must be a string, got {type(completion).__name__}")
    choice = choice_of(true_answer)
    if choice is not None:
        letter = _choice_letter(completion)
        return Grade(extracted=letter, correct=letter == choice)
    reference = parse_reference(true_answer)
    answer = _boxed(_rewrite_scientific(completion))
    extracted = str(answer[-1]).rstrip(".") if answer else None  # a sentence's stop, at times
    places = _decimal_places(reference)
    correct = bool(reference and answer and _math_verify().verify(
        reference, answer, float_rounding=places, numeric_precision=max(15, places + 3),
        **_limits("timeout_seconds")))
    return Grade(extracted=extracted, correct=correct)
