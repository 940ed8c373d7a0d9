"""Issue 23, item 1: the judge that picks DPO's on-policy pairs and the judge that grades DPO are never
the same model trained on the same data; the config's one resolution (config.steps -> judges.choose_judges)
says which judge does what, and the reward step trains each trained judge on its own part of the prompts."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from prefalign.config.resolve import load_config
from prefalign.config.schema import load_schema
from prefalign.config.steps import step_settings
from prefalign.errors import ConfigError
from prefalign.records import message
from prefalign.train.reward import in_part

SCHEMA = load_schema()


def settings_of(tmp_path, datasets=None, **sections):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if datasets == "hh":
        config["datasets"] = {"hh": {"format": "hh-rlhf", "source": "local", "path": "raw/hh.jsonl"}}
        (tmp_path / "raw").mkdir(exist_ok=True)
        (tmp_path / "raw/hh.jsonl").touch()  # resolution checks that the file exists; no row is read
    for section, keys in sections.items():
        config.setdefault(section, {}).update(keys)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return step_settings(load_config(path, SCHEMA), [path])


def test_the_demo_uses_the_task_verifier_for_both_because_it_was_never_trained(tmp_path):
    settings = settings_of(tmp_path)
    judges = settings["judges"]
    assert judges.evaluation.kind == judges.pairs.kind == "task"
    assert settings["onpolicy"].judge == "task" and settings["eval:dpo"].pair_judge == "task"
    assert "never trained" in settings["eval:dpo"].judge_independence
    assert "pair_reward" not in settings


def test_on_real_data_two_reward_models_learn_from_disjoint_parts_of_the_train_prompts(tmp_path):
    settings = settings_of(tmp_path, "hh")
    judges = settings["judges"]
    assert (judges.evaluation.kind, judges.evaluation.part) == ("trained", "evaluation")
    assert (judges.pairs.kind, judges.pairs.part) == ("trained", "pairs")
    assert settings["reward"].part == "evaluation" and settings["pair_reward"].part == "pairs"
    assert "train_pair_judge" in judges.pairs.why and "train_reward_model" in judges.evaluation.why
    assert settings["onpolicy"].judge == "trained" and "onpolicy.judge auto" in settings["onpolicy"].judge_reason
    dpo = settings["eval:dpo"]
    assert dpo.judge == "trained" and dpo.pair_judge == "trained"
    assert "one part of the train prompts, the evaluation judge on the other" in dpo.judge_independence


def test_offline_dpo_has_no_pair_judge_and_the_evaluation_judge_learns_from_every_train_pair(tmp_path):
    settings = settings_of(tmp_path, "hh", dpo={"pairs": "offline"})
    assert settings["judges"].pairs is None and "pair_reward" not in settings
    assert settings["reward"].part == "all" and settings["eval:dpo"].pair_judge is None
    assert "dpo.pairs offline" in settings["eval:dpo"].judge_independence


def test_a_named_evaluation_reward_model_leaves_the_pair_judge_trained_on_every_train_pair(tmp_path):
    settings = settings_of(tmp_path, "hh", eval={"reward_model": str(tmp_path)})
    judges = settings["judges"]
    assert judges.evaluation.kind == "reward_model" and (judges.pairs.kind, judges.pairs.part) == ("trained", "all")
    assert settings["pair_reward"].part == "all"
    assert f"the reward model {tmp_path}" in settings["eval:dpo"].judge_independence


def test_one_named_reward_model_cannot_both_pick_the_pairs_and_grade_them(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: onpolicy.judge: expected a pair judge other than the "
                                          r"evaluation judge"):
        settings_of(tmp_path, "hh", eval={"judge": "reward_model", "reward_model": str(tmp_path)},
                    onpolicy={"judge": "reward_model", "reward_model": str(tmp_path)})
    other = tmp_path / "other"
    other.mkdir()
    settings = settings_of(tmp_path, "hh", eval={"judge": "reward_model", "reward_model": str(tmp_path)},
                           onpolicy={"judge": "reward_model", "reward_model": str(other)})
    assert settings["onpolicy"].reward_model == str(other) and settings["eval:dpo"].reward_model == str(tmp_path)


def test_a_hub_pair_judge_must_be_pinned(tmp_path):
    with pytest.raises(ConfigError, match=r"onpolicy.reward_model_revision: expected a 40-hex-digit commit"):
        settings_of(tmp_path, "hh", onpolicy={"judge": "reward_model", "reward_model": "org/rm"})


def test_the_two_parts_split_prompts_not_pairs_and_follow_eval_share():
    prompts = [[message("user", f"question {i}")] for i in range(2000)]
    evaluation = [p for p in prompts if in_part(p, "evaluation", 0.5)]
    pairs = [p for p in prompts if in_part(p, "pairs", 0.5)]
    assert len(evaluation) + len(pairs) == 2000 and not {str(p) for p in evaluation} & {str(p) for p in pairs}
    assert 900 < len(evaluation) < 1100  # a hash, not file order: about half
    assert sum(in_part(p, "evaluation", 0.2) for p in prompts) < 500
    assert all(in_part(p, "all", 0.5) for p in prompts)
    # Another pair of the same prompt lands in the same part (the key is the prompt alone).
    assert in_part([message("user", "question 7")], "evaluation", 0.5) == in_part(prompts[7], "evaluation", 0.5)
