"""Answer checking (``longflow_jax.grading``): Math-Verify against the benchmarks' own references."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from longflow_jax.grading import Grade, choice_of, grade

MATH_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math"
DATASETS = ("aime24", "aime25", "amc", "gpqa", "gsm8k", "math", "minerva", "olympiad")


def _rows(name: str) -> list[dict]:
    path = MATH_DATA / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not present (the benchmarks live beside the checkout in ../shared)")
    # JSON Lines are separated by \n only: questions may hold U+2028, which str.splitlines splits on
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _sampled(reference: str) -> bool:
    """Whether a reference is a single, complete answer: braces balanced, no ``\\boxed`` and no
    inner ``$``.  This leaves out MATH-500's 16 references that were cut off mid-LaTeX (row 35:
    ``3} \\pmod{7``, row 137: ``204_5}$. Note that ...``), Minerva row 72, OlympiadBench's
    lists of several formulas (``$69$,$84$``, graded in the hand-written cases below), and
    three complete MATH-500 references with a ``\\$`` (``\\$18.90``: they grade correctly too,
    but boxing them as written is not what a model would write)."""
    body = reference.strip()
    if len(body) > 1 and body[0] == body[-1] == "$":
        body = body[1:-1]
    depth = 0
    for i, c in enumerate(body):
        if c in "{}" and (i == 0 or body[i - 1] != "\\"):
            depth += 1 if c == "{" else -1
            if depth < 0:
                return False
    return depth == 0 and "boxed" not in body and "$" not in body


@pytest.mark.parametrize("name", DATASETS)
def test_every_reference_grades_its_own_boxed_answer(name, rng):
    """A completion that boxes the reference (as a model would write it) is correct, and one
    that boxes a different choice or number is not: random rows of every benchmark."""
    rows = [r for r in _rows(name) if _sampled(r["true_answer"])]
    picked = rng.choice(len(rows), size=min(12, len(rows)), replace=False)
    for i in picked:
        ref = rows[i]["true_answer"]
        body = ref.strip().strip("$")
        right = grade(f"Step by step ... so the answer is $\\boxed{{{body}}}$.", ref)
        assert right.correct and right.extracted, (name, rows[i]["index"], ref, right)
        if choice_of(ref):
            other = "B" if choice_of(ref) == "A" else "A"
        elif re.fullmatch(r"-?\d+", body):
            other = str(int(body) + 1)
        elif re.fullmatch(r"-?\d+\.\d+", body):
            other = str(float(body) + 1)
        else:  # symbolic: "ref + 1" can meet Math-Verify quirks (it reads N=n as n=n)
            continue
        wrong = grade(f"so the answer is $\\boxed{{{other}}}$.", ref)
        assert wrong == Grade(other, False), \
            (name, rows[i]["index"], ref, wrong)


@pytest.mark.parametrize("completion, reference, extracted, correct", [
    ("Adding up, she makes $16 - 3 - 4 = 9$ eggs, so $\\boxed{18}$ dollars.", "18", "18", True),
    ("so the total is \\boxed{17}.", "18", "17", False),
    ("First I got 3, but fixing the sum gives \\boxed{18}.", "18", "18", True),
    ("First \\boxed{3}, then \\boxed{18}.", "18", "3,18", False),  # several boxes: one list
    # no box, no answer: a statement, a cut-off restatement, a numbered list, a loose number,
    # and Math-Verify's own anchors' mistakes ("answered 45", "answer is not 60")
    ("The answer is 60.", "60", None, False),
    ("Okay, so Maria answered 45 questions on the test. She got 80% of them right, so", "45", None, False),
    ("The answer is not 60. Let me recompute: 12 * 5 = ", "60", None, False),
    ("The answer is 12 * 5", "60", None, False),
    ("We need 12 * 5", "60", None, False),
    ("Let us compute 3 + 4 first.", "7", None, False),
    ("2. Now, we can", "2", None, False),
    ("So she makes $18 every day.", "18", None, False),
    ("$x = 69$ or $x = 84$, so \\boxed{84, 69}", "$69$,$84$", "84, 69", True),  # OlympiadBench lists
    ("\\boxed{69}", "$69$,$84$", "69", False),
    ("The value is \\boxed{\\dfrac{14}{3}}.", "\\frac{14}{3}", "\\frac{14}{3}", True),
    ("In polar form: \\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
    ("\\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi)", False),
    ("It is \\boxed{27}.", "27.0", "27", True),
    ("\\boxed{\\frac{1}{2(n+1)}}", "$\\frac{1}{2 n+2}$", "\\frac{1}{2(n+1)}", True),
    # scientific literals, boxed or anchored, either side
    ("The flux is about \\boxed{4.5e33} erg/s.", "4.5e33", "4.5*10^33", True),
    ("\\boxed{4.5 \\times 10^{33}}", "4.5e33", "4.5 \\times 10^{33}", True),
    ("\\boxed{4.5e32}", "4.5e33", "4.5*10^32", False),
    ("The answer is \\boxed{4.5E+33}.", "4.5e33", "4.5*10^33", True),
    ("\\boxed{4.5e-3}", "0.0045", "4.5*10^{-3}", True),
    ("\\boxed{0.2}", "2e-1", "0.2", True),
    # tiny references keep their significant digits (Math-Verify alone rounds to 6 places)
    ("\\boxed{0.0}", "1.24e-8", "0.0", False),
    ("\\boxed{2e-27}", "1.325e-27", "2*10^{-27}", False),
    ("\\boxed{1.325 \\times 10^{-27}}", "1.325e-27", "1.325 \\times 10^{-27}", True),
    ("\\boxed{0.0000000124}", "1.24e-8", "0.0000000124", True),
    ("\\boxed{0.333333}", "\\frac{1}{3}", "0.333333", True),  # 6 places, as Math-Verify
    # multiple choice: a box or an anchored statement, in any usual form; a loose letter is not
    ("Comparing the options, the answer is \\boxed{C}.", "C", "C", True),
    ("Answer: C", "C", "C", True),
    ("The answer is (B).", "B", "B", True),
    ("Answer: (c)", "C", "C", True),
    ("the correct option is D", "D", "D", True),
    ("\\boxed{(B)}", "B", "B", True),
    ("\\boxed{\\text{B}}", "B", "B", True),
    ("The final answer is $\\boxed{\\textbf{(C)}}$", "C", "C", True),
    ("\\boxed{C: 14}", "C", "C", True),
    ("\\boxed{B}", "C", "B", False),
    ("The correct answer is **B**.", "B", "B", True),
    ("Answer: **(B)**", "B", "B", True),
    ("The answer is B. Actually, answer is a tricky thing.", "B", "B", True),
    ("The answer is (C).", "\\text{(C)}", "C", True),  # MATH-500 writes some choices so
    ("\\boxed{c}", "\\text{(C)}", "C", True),
    ("A classic example of a mathematical concept.", "A", None, False),
    ("I think the answer is a combination of both effects, so I am unsure.", "A", None, False),
    ("The value is \\boxed{14}, so the answer is (C).", "\\text{(C)}", "C", True),  # number boxed
    ("**Final Answer:** C", "\\text{(C)}", "C", True),
    ("The answer is C.\n\nExplanation: the others ...", "C", "C", True),
    # hedges, lists and mentions are no answer
    ("Let's evaluate answer (A) first. The energy would be", "A", None, False),
    ("Okay, let me look at each possible answer:\nA) 2.5 eV\nB) 3.1 eV\n...so", "A", None, False),
    ("The answer is A, but B is also plausible.", "A", None, False),
    ("The answer is (C) or (D)", "C", None, False),
    ("The answer is a.", "A", None, False),
    ("\\boxed{(C) \\text{ and } (D)}", "C", None, False),
    ("\\boxed{A. B. C. D.}", "A", None, False),
    ("\\boxed{C. Actually D}", "C", None, False),
    ("To answer a question like this, we need more data.", "A", None, False),
    ("The answer is I think B", "B", None, False),
    ("Option A is not a valid solution. Option B is not either.", "A", None, False),
    ("I am not sure how to finish this.", "204", None, False),
])
def test_grade_hand_written_completions(completion, reference, extracted, correct):
    assert grade(completion, reference) == Grade(extracted, correct)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="completion must be a string"):
        grade(None, "1")
    for bad in ("", "  ", None, 3):
        with pytest.raises(ValueError, match="true_answer must be a non-empty string"):
            grade("\\boxed{1}", bad)


def test_grading_works_off_the_main_thread():
    """Math-Verify's time limits use signal.alarm (main thread only); a grading thread pool
    must still get answers, not Math-Verify's ValueError."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        grades = list(pool.map(grade, ["so \\boxed{\\frac{1}{2}}", "\\boxed{0.4}"], ["0.5", "0.5"]))
    assert grades == [Grade("\\frac{1}{2}", True), Grade("0.4", False)]
