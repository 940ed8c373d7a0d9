import random

import pytest

from prefalign import tasks


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_task_round_trips_through_the_judge(name):
    rng = random.Random(name)
    task = tasks.TASKS[name]
    for _ in range(200):
        prompt, args = task.make(rng)
        right = task.solve(*args)
        assert tasks.expected_answer(prompt) == right
        assert tasks.judge(prompt, right) is True
        assert tasks.judge(prompt, f"  {right}. ") is True  # whitespace and a final full stop are forgiven
        wrong = task.wrong(rng, args)
        assert wrong != right
        assert tasks.judge(prompt, wrong) is False


def test_unknown_prompts_are_not_judged():
    assert tasks.judge("Tell me a joke.", "no") is None
    assert tasks.parse("What is 2 + 3? Please") is None


def test_judge_is_strict_about_case_and_content():
    assert tasks.judge("Write abc in capital letters.", "abc") is False
    assert tasks.judge("Write abc in capital letters.", "ABC") is True
    assert tasks.judge("Sort these digits: 3 1 2", "1 2 3") is True
    assert tasks.judge("Sort these digits: 3 1 2", "3 2 1") is False


def test_garbled_answers_are_not_empty():
    rng = random.Random(0)
    assert all(tasks.garble(rng, "x").strip() for _ in range(500))
