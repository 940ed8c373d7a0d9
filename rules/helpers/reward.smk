# Helpers of rules/reward.smk.


def judge_eval_outputs():
    """The reward-model judge's held-out accuracy, for report and check (none for the task judge)."""
    if JUDGE.kind == "task":
        return {}
    return {"judge_eval": rules.evaluate_reward_model.output.metrics}
