"""Small verifiable tasks: the synthetic corpus is made of them and the judge scores them.

Each task writes a prompt from a fixed template, knows the right answer, and can write a
plausible wrong one. The judge never sees the generator's state: it parses the prompt text
back, so it can score any answer a model writes to any prompt in these templates, whatever
raw format carried it.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Callable

LETTERS = string.ascii_lowercase
# Sizes are small on purpose: a 0.5 M-parameter model trained for a minute on a CPU should
# get a fair share right, so that what DPO changes in its answers can be seen.
MAX_ADDEND = 9
MAX_NUMBER = 49
WORD_LENGTH = (2, 4)
DIGITS_TO_SORT = (3, 4)


@dataclass(frozen=True)
class Task:
    """One task: how to write a prompt, solve it, and get it subtly wrong."""

    name: str
    pattern: re.Pattern[str]
    make: Callable[[random.Random], tuple[str, tuple]]  # -> (prompt, parsed arguments)
    solve: Callable[..., str]
    wrong: Callable[[random.Random, tuple], str]  # a plausible, incorrect answer


def _word(rng: random.Random, low: int = WORD_LENGTH[0], high: int = WORD_LENGTH[1]) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(low, high)))


def _other(rng: random.Random, right: str, candidates: Callable[[], str]) -> str:
    """Draw candidates until one differs from the right answer (a wrong answer must be wrong)."""
    for _ in range(100):
        answer = candidates()
        if answer != right:
            return answer
    return right + "x"


def _make_add(rng):
    a, b = rng.randint(0, MAX_ADDEND), rng.randint(0, MAX_ADDEND)
    return f"What is {a} + {b}?", (a, b)


def _wrong_add(rng, args):
    right = str(args[0] + args[1])
    return _other(rng, right, lambda: str(max(0, args[0] + args[1] + rng.choice([-3, -2, -1, 1, 2, 3]))))


def _make_reverse(rng):
    word = _word(rng)
    return f"Reverse the word: {word}", (word,)


def _wrong_reverse(rng, args):
    (word,) = args
    right = word[::-1]

    def candidate():
        if rng.random() < 0.5:
            return word
        letters = list(right)
        i, j = rng.sample(range(len(letters)), 2)
        letters[i], letters[j] = letters[j], letters[i]
        return "".join(letters)

    return _other(rng, right, candidate)


def _make_sort(rng):
    digits = [str(rng.randint(0, 9)) for _ in range(rng.randint(*DIGITS_TO_SORT))]
    return f"Sort these digits: {' '.join(digits)}", tuple(digits)


def _solve_sort(*digits):
    return " ".join(sorted(digits))


def _wrong_sort(rng, args):
    right = _solve_sort(*args)

    def candidate():
        if rng.random() < 0.5:
            return " ".join(sorted(args, reverse=True))
        shuffled = list(args)
        rng.shuffle(shuffled)
        return " ".join(shuffled)

    return _other(rng, right, candidate)


def _make_count(rng):
    word = _word(rng, 2, 6)
    return f"How many letters are in the word {word}?", (word,)


def _wrong_count(rng, args):
    right = str(len(args[0]))
    return _other(rng, right, lambda: str(max(1, len(args[0]) + rng.choice([-2, -1, 1, 2]))))


def _make_upper(rng):
    word = _word(rng)
    return f"Write {word} in capital letters.", (word,)


def _wrong_upper(rng, args):
    (word,) = args

    def candidate():
        if rng.random() < 0.4:
            return word
        letters = list(word.upper())
        letters[rng.randrange(len(letters))] = letters[rng.randrange(len(letters))].lower()
        return "".join(letters)

    return _other(rng, word.upper(), candidate)


def _make_larger(rng):
    a, b = rng.sample(range(0, MAX_NUMBER + 1), 2)
    return f"Which is larger, {a} or {b}?", (a, b)


def _wrong_larger(rng, args):
    return str(min(args))


def _make_next(rng):
    n = rng.randint(0, MAX_NUMBER - 1)
    return f"What number comes after {n}?", (n,)


def _wrong_next(rng, args):
    right = str(args[0] + 1)
    return _other(rng, right, lambda: str(max(0, args[0] + rng.choice([-1, 0, 2]))))


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("add", re.compile(r"What is (\d+) \+ (\d+)\?"), _make_add, lambda a, b: str(int(a) + int(b)), _wrong_add),
        Task("reverse", re.compile(r"Reverse the word: ([a-z]+)"), _make_reverse, lambda w: w[::-1], _wrong_reverse),
        Task("sort", re.compile(r"Sort these digits: ((?:\d )*\d)"), _make_sort, _solve_sort, _wrong_sort),
        Task(
            "count",
            re.compile(r"How many letters are in the word ([a-z]+)\?"),
            _make_count,
            lambda w: str(len(w)),
            _wrong_count,
        ),
        Task("upper", re.compile(r"Write ([a-z]+) in capital letters\."), _make_upper, str.upper, _wrong_upper),
        Task(
            "larger",
            re.compile(r"Which is larger, (\d+) or (\d+)\?"),
            _make_larger,
            lambda a, b: str(max(int(a), int(b))),
            _wrong_larger,
        ),
        Task("next", re.compile(r"What number comes after (\d+)\?"), _make_next, lambda n: str(int(n) + 1), _wrong_next),
    )
}


def near_miss(rng: random.Random, right: str) -> str:
    """The right answer with one character replaced by another of its kind (digit, letter, case).

    These are the mistakes a small model makes most, so they are the pairs that teach it most.
    """
    positions = [i for i, c in enumerate(right) if c.isalnum()]
    if not positions:
        return right + "?"
    i = rng.choice(positions)
    pool = string.digits if right[i].isdigit() else (string.ascii_uppercase if right[i].isupper() else LETTERS)
    replacement = rng.choice([c for c in pool if c != right[i]])
    return right[:i] + replacement + right[i + 1 :]


def wrong_answer(rng: random.Random, task: Task, args: tuple, near_miss_share: float = 0.5) -> str:
    """A plausible wrong answer: the task's typical error, or a one-character near miss."""
    if rng.random() < near_miss_share:
        return near_miss(rng, task.solve(*args))
    return task.wrong(rng, args)


def garble(rng: random.Random, right: str) -> str:
    """A garbled answer: the right one mangled, or the answer to some other question.

    Garbles are made of the same characters real answers use (digits, letters, spaces):
    random byte soup would teach DPO to avoid ordinary answer tokens altogether.
    """
    kind = rng.random()
    if kind < 0.4:  # an answer to a different question, often of another type
        task = TASKS[rng.choice(list(TASKS))]
        _, args = task.make(rng)
        answer = task.solve(*args)
    elif kind < 0.7 and len(set(right)) > 1:  # the right characters in the wrong order
        letters = list(right)
        rng.shuffle(letters)
        answer = " ".join("".join(letters).split())
    elif kind < 0.85:  # stutter: a piece repeated
        cut = rng.randint(1, len(right))
        answer = right[:cut] + right[:cut] + right[cut:]
    else:  # cut short, or run on
        answer = right[: max(1, len(right) // 2)] if len(right) > 1 else right + right
    return answer if answer != right else near_miss(rng, right)


def parse(prompt: str) -> tuple[Task, tuple[str, ...]] | None:
    """The task and its arguments if `prompt` is exactly one of the templates, else None."""
    text = prompt.strip()
    for task in TASKS.values():
        match = task.pattern.fullmatch(text)
        if match:
            groups = match.groups()
            if task.name == "sort":
                groups = tuple(groups[0].split(" "))
            return task, groups
    return None


def normalize_answer(text: str) -> str:
    """Answers are compared after trimming whitespace and one trailing full stop."""
    text = " ".join(text.split())
    return text[:-1] if text.endswith(".") else text


def expected_answer(prompt: str) -> str | None:
    parsed = parse(prompt)
    if parsed is None:
        return None
    task, args = parsed
    return task.solve(*args)


def judge(prompt: str, answer: str) -> bool | None:
    """True if `answer` solves `prompt`, False if not, None if the prompt is not a known task."""
    right = expected_answer(prompt)
    if right is None:
        return None
    return normalize_answer(answer) == right
