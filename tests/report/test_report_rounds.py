"""The report's DPO rounds section (prefalign.report.rounds) on hand-made outputs of two rounds."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

from prefalign.report import document, rounds


def stats(round_: int, paired: int, wrong: int, correct: int) -> dict:
    return {"round": round_, "policy": "results/sft/model" if round_ == 1 else f"results/dpo/round-{round_ - 1}/model",
            "judge": {"kind": "task"}, "sample_score_mean": 0.3 * round_,
            "settings": {"samples_per_prompt": 4, "temperature": 1.0, "top_p": 1.0, "margin": 0.0},
            "prompts": {"in": paired + wrong + correct, "paired": paired, "dropped": wrong + correct,
                        "dropped_by_reason": {"all_correct": correct, "all_wrong": wrong, "tie": 0, "below_margin": 0}}}


def dpo(steps: int, loss: float) -> dict:
    return {"train": {"steps": steps, "loss": loss, "rewards/accuracies": 0.9, "rewards/margins": 1.5}}


def evaluation(greedy: float, sampled: float) -> dict:
    return {"metrics": {"judge_accuracy": greedy, "sampled_judge_accuracy": sampled},
            "intervals": {"judge_accuracy": {"low": greedy - 0.05, "high": greedy + 0.05}}}


def test_rounds_section_lists_every_round_and_what_dpo_changed(tmp_path):
    paths = []
    for name, data in (("s1", stats(1, 100, 50, 10)), ("s2", stats(2, 80, 40, 40)), ("d1", dpo(150, 1.2)),
                       ("m1", {"onpolicy": 100, "offline": 100}), ("m2", {"onpolicy": 80, "offline": 80})):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        paths.append(tmp_path / f"{name}.json")
    args = argparse.Namespace(onpolicy_stats=paths[:2], dpo_round_metrics=[paths[2]], mix_stats=paths[3:])
    run = SimpleNamespace(training={"dpo": dpo(150, 0.9)}, evaluations={"sft": evaluation(0.36, 0.27),
                                                                         "dpo": evaluation(0.42, 0.38)},
                          comparisons=[{"model": "dpo", "baseline": "sft", "greedy": {
                              "win_rate": 0.52, "wins": 20, "ties": 300, "losses": 6,
                              "interval": {"low": 0.51, "high": 0.54}}, "sampled": {
                              "win_rate": 0.55, "wins": 50, "ties": 250, "losses": 20, "interval": None}}])
    sections = [rounds.rounds_section(args, run), document.Section("next", "next")]
    md, page = document.markdown("r", sections), document.html("r", sections)
    assert md.index("## DPO rounds (on-policy pairs)") < md.index("## next")
    lines = md.splitlines()
    one = next(line for line in lines if line.startswith("| 1 |"))
    two = next(line for line in lines if line.startswith("| 2 |"))
    assert "| sft | 160 | 100 | 10 | 50 | 0 | 0 | 0.300 | 100 + 100 offline | 150 | 1.200 |" in one
    assert "| round-1 | 160 | 80 | 40 | 40 | 0 | 0 | 0.600 | 80 + 80 offline | 150 | 0.900 |" in two
    assert "Judge accuracy, greedy answers: SFT 0.360 [0.310, 0.410] -> DPO 0.420 [0.370, 0.470]" in md
    assert "Judge accuracy, sampled answers: SFT 0.270 -> DPO 0.380 (95% intervals), a change of +0.110." in md
    assert "Win rate of DPO over SFT, greedy answers: 0.520 [0.510, 0.540] (20 wins, 300 ties, 6 losses)." in md
    assert "id=rounds" in page.replace('"', "") and page.index("DPO rounds") < page.index(">next</h2>")


def test_without_onpolicy_stats_there_is_no_rounds_section():
    args = argparse.Namespace(onpolicy_stats=[], dpo_round_metrics=[], mix_stats=[])
    assert rounds.rounds_section(args, None) is None
