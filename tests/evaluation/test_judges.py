"""The judges behind one interface; the reward-model judge with a reward model trained here by TRL."""

import json

import pytest
from tiny_reward_model import conversation, preference_rows, run_on, train_tiny_reward_model

from prefalign.errors import ConfigError
from prefalign.evaluation.judges import TaskJudge, make_judge


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    return train_tiny_reward_model(tmp_path_factory.mktemp("rm") / "model")


def test_task_judge_scores_the_verifier_and_knows_what_it_can_score():
    judge = make_judge("task")
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]] * 2
    assert judge.score(prompts, ["5", "6"]) == [1.0, 0.0]
    assert judge.can_score(prompts[0])
    assert not judge.can_score([{"role": "user", "content": "Tell me a joke"}])
    assert judge.describe() == {"kind": "task"}


def test_reward_model_judge_ranks_held_out_answers_as_it_was_trained(reward_model):
    judge = make_judge("reward_model", reward_model)
    rows = preference_rows(60, seed=99)  # other prompts than the training rows
    prompts = [r["prompt"] for r in rows]
    good = judge.score(prompts, [r["chosen"][0]["content"] for r in rows])
    bad = judge.score(prompts, [r["rejected"][0]["content"] for r in rows])
    assert sum(g > b for g, b in zip(good, bad)) >= 54  # >= 90% of held-out pairs
    assert judge.can_score([{"role": "user", "content": "anything at all"}])
    assert judge.describe()["architecture"] == "LlamaForSequenceClassification"


def test_reward_model_scores_do_not_depend_on_the_batch(reward_model):
    rows = preference_rows(10, seed=5)
    prompts, answers = [r["prompt"] for r in rows], [r["rejected"][0]["content"] for r in rows]
    one = make_judge("reward_model", reward_model, batch_size=1).score(prompts, answers)
    many = make_judge("reward_model", reward_model, batch_size=8).score(prompts, answers)
    assert many == pytest.approx(one, abs=1e-5)


def test_a_causal_lm_is_refused_as_a_reward_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(ConfigError, match="reward_model: expected a sequence-classification checkpoint"):
        make_judge("reward_model", tmp_path)


def test_judge_settings_are_checked_up_front(tmp_path):
    with pytest.raises(ConfigError, match="judge: expected one of task, reward_model, trained"):
        make_judge("gpt")
    with pytest.raises(ConfigError, match="reward_model: expected a reward model folder"):
        make_judge("reward_model")
    with pytest.raises(ConfigError, match="reward_model: expected a folder with a reward model"):
        make_judge("reward_model", tmp_path / "missing")


def test_the_trained_judge_is_a_reward_model_that_says_it_was_trained(reward_model):
    judge = make_judge("trained", reward_model)
    assert judge.describe() == {"kind": "trained", "path": str(reward_model),
                                "architecture": "LlamaForSequenceClassification"}
    assert judge.can_score([{"role": "user", "content": "Tell me about your day."}])


def test_a_hub_reward_model_needs_its_pinned_commit_and_says_when_it_is_not_cached(tmp_path, monkeypatch):
    from prefalign.errors import RecordError

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache, offline (conftest)
    with pytest.raises(ConfigError, match="reward_model_revision: expected the 40-hex-digit commit of hub reward "
                                          "model 'org/rm'"):
        make_judge("reward_model", "org/rm", revision="main")
    with pytest.raises(RecordError, match=r"reward_model: cannot load org/rm@a{40}: .*HF_HUB_OFFLINE=0"):
        make_judge("reward_model", "org/rm", revision="a" * 40)


def test_task_judge_refuses_a_prompt_it_cannot_verify():
    from prefalign.errors import RecordError

    with pytest.raises(RecordError, match="not one of the task templates"):
        TaskJudge().score([[{"role": "user", "content": "hello"}]], ["hi"])


def test_run_on_answers_differ_from_the_right_one():
    import random

    assert run_on(random.Random(0), "5").startswith("5 ")
    assert conversation("q", "a")[1] == {"role": "assistant", "content": "a"}
