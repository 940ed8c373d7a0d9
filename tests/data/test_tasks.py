import random

import pytest

from prefalign.data import tasks


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


def test_garbled_answers_are_wrong_and_made_of_answer_characters():
    rng = random.Random(0)
    for right in ("x", "17", "ABC", "1 2 9"):
        for _ in range(300):
            garbled = tasks.garble(rng, right)
            assert garbled.strip() and garbled != right
            assert all(c.isalnum() or c == " " for c in garbled)


def test_near_misses_differ_in_exactly_one_character_of_the_same_kind():
    rng = random.Random(1)
    for right in ["17", "ABC", "1 2 9", "x"]:
        for _ in range(100):
            miss = tasks.near_miss(rng, right)
            diffs = [(a, b) for a, b in zip(right, miss) if a != b]
            assert len(miss) == len(right) and len(diffs) == 1
            a, b = diffs[0]
            assert a.isdigit() == b.isdigit() and a.isupper() == b.isupper()
