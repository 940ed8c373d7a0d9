"""The report's answer to "did DPO help?", and everything a reader needs to trust it.

- `verdict_lines`: one sentence per comparison, from the win rate's 95% interval (better /
  no measurable change / worse), naming the judge, with the length-controlled rate and ties.
- `judge_lines`: which judge scored the answers and why (eval.judge, `auto` resolved), and
  for a reward-model judge its held-out pairwise accuracy and its agreement with the task
  verifier where the verifier can check it.
- `win_rate_rows`: raw and length-controlled win rates with intervals, wins / ties / losses,
  mean answer lengths.
- `sample_answer_rows`: the baseline's and the model's answers side by side with the judge's
  score of each.
- `loss_part_rows`: a combined DPO loss (e.g. sigmoid + NLL) with its parts on the held-out
  pairs, at the start (policy = SFT) and the end of DPO, so a rising total is explained.
- `gap_lines`: every metric that could not be computed, with its reason (metrics.json's
  `unavailable`), so no cell of the report is a bare n/a.

Reads only the dicts it is given (evaluate, compare, evaluate-judge and training outputs).
"""

from __future__ import annotations

import json
import math

NOT_COMPUTED = "not computed (see Gaps)"
LOSS_TERMS = {"sigmoid": ("sigmoid_loss", "-log sigmoid(margin), the DPO term"),
              "sft": ("chosen_nll_per_token", "NLL per token of the chosen replies")}


def interval_text(value, interval, spec: str = ".3f") -> str:
    if value is None:
        return NOT_COMPUTED
    if not interval:
        return format(value, spec)
    return f"{format(value, spec)} [{format(interval['low'], spec)}, {format(interval['high'], spec)}]"


def judge_name(judge: dict) -> str:
    kind = judge.get("kind", "?")
    return {"task": "task-verifier", "trained": "trained reward-model", "reward_model": "reward-model"}.get(kind, kind)


# ---------------------------------------------------------------- did DPO help?

def verdict_lines(comparisons: list[dict]) -> list[str]:
    if not comparisons:
        return ["No comparison was run (eval.comparisons is empty), so this report cannot say whether DPO helped; "
                "set eval.comparisons: [[dpo, sft]]."]
    lines = []
    for c in comparisons:
        g, verdict = c["greedy"], c.get("verdict", {}).get("result")
        model, baseline = c["model"].upper(), c["baseline"].upper()
        words = {"better": f"{model} is better than {baseline}",
                 "worse": f"{model} is worse than {baseline}",
                 "no measurable change": f"no measurable change from {baseline} to {model}"}.get(verdict, "no verdict")
        where = {"better": "lies above 0.5", "worse": "lies below 0.5",
                 "no measurable change": "contains 0.5"}.get(verdict, "")
        lc = g.get("lc", {})
        line = (f"Did {model} help? {words[0].upper() + words[1:]} on the {judge_name(c['judge'])} judge: greedy win "
                f"rate {interval_text(g['win_rate'], g['interval'])} over {g['prompts']} held-out prompts (95% interval "
                f"{where}; {g['wins']} wins, {g['ties']} ties, {g['losses']} losses)")
        if lc.get("win_rate") is not None:
            line += f", length-controlled {interval_text(lc['win_rate'], lc['interval'])}"
            lc_verdict = ("better" if lc["interval"]["low"] > 0.5 else "worse" if lc["interval"]["high"] < 0.5
                          else "no measurable change")
            if lc_verdict != verdict:
                line += (f" ({lc_verdict} once length is controlled: part of the raw preference follows answer "
                         "length)")
        line += "."
        sampled = c.get("verdict", {}).get("sampled")
        if sampled and sampled != verdict:
            s = c["sampled"]
            line += f" Sampled answers say {sampled}: {interval_text(s['win_rate'], s['interval'])}."
        lines.append(line)
    return lines


# ---------------------------------------------------------------- the judge

def judge_lines(evaluations: dict[str, dict], comparisons: list[dict], judge_eval: dict | None) -> list[str]:
    first = next(iter(evaluations.values()), {})
    judge, choice = first.get("judge", {}), first.get("judge_choice") or {}
    described = judge_name(judge) + (f" ({judge['path']})" if judge.get("path") else "")
    lines = [f"Judge: {described}. Why: {choice.get('why', 'not recorded')}."]
    if judge_eval:
        m, i = judge_eval["metrics"], judge_eval.get("intervals", {})
        lines.append(f"How far to trust it: held-out pairwise accuracy {interval_text(m['accuracy'], i.get('accuracy'))}"
                     f" on {m['pairs']} test pairs (the share where chosen scores above rejected, ties counting "
                     f"half: {m['ties']} here; interval over prompts).")
        if m.get("verifier_agreement") is not None:
            lines.append(f"Against the task verifier on the {m['verifier_pairs']} test pairs it separates (chosen "
                         f"right, rejected wrong): {interval_text(m['verifier_agreement'], i.get('verifier_agreement'))}.")
    for c in comparisons:
        a = c.get("judge_agreement")
        if a:
            lines.append(f"Agreement with the task verifier on the same answers ({c['model']} vs {c['baseline']}, "
                         f"{a['pairs']} answer pairs where one is right and one wrong): the judge preferred the right "
                         f"one {interval_text(a['rate'], a['interval'])} of the time ({a['agree']} agree, "
                         f"{a['disagree']} disagree, {a['judge_ties']} judge ties).")
    return lines


# ---------------------------------------------------------------- win rates

def win_rate_rows(comparisons: list[dict]) -> tuple[list[str], list[list[str]]]:
    if not comparisons:
        return [], []
    header = ["comparison", "judge", "decoding", "prompts", "wins", "ties", "losses", "win rate [95% CI]",
              "length-controlled [95% CI]", "mean tokens (model / baseline)", "verdict"]
    rows = []
    for c in comparisons:
        for decoding in ("greedy", "sampled"):
            r = c[decoding]
            lc, lengths = r.get("lc", {}), r.get("lengths", {})
            verdict = c.get("verdict", {}).get("result" if decoding == "greedy" else "sampled", "")
            length_cell = (f"{lengths['model']:.1f} / {lengths['baseline']:.1f}"
                           if lengths.get("model") is not None else NOT_COMPUTED)
            rows.append([f"{c['model']} vs {c['baseline']}", judge_name(c["judge"]), decoding, str(r["prompts"]),
                         str(r["wins"]), str(r["ties"]), str(r["losses"]), interval_text(r["win_rate"], r["interval"]),
                         interval_text(lc.get("win_rate"), lc.get("interval")), length_cell, verdict])
    return header, rows


# ---------------------------------------------------------------- sample answers

def shown(text: str | None, limit: int) -> str:
    """A text as a table cell: escapes visible (a base model writes control bytes), cut at `limit` characters."""
    if text is None:
        return ""
    text = json.dumps(text, ensure_ascii=False)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_text(row: dict) -> str:
    score = row.get("score")
    if score is None:
        return "not judged"
    verdict = "" if row.get("correct") is None else " ✓" if row["correct"] else " ✗"
    return f"{score:.3g}{verdict}"


def sample_answer_rows(generations: dict[str, list[dict]], comparison: tuple[str, str] | None,
                       limit: int) -> tuple[list[str], list[list[str]]]:
    """Prompt, then baseline and model greedy answers with their judge scores, for `limit` held-out prompts."""
    if comparison is None or limit == 0:
        return [], []
    model, baseline = comparison
    if model not in generations or baseline not in generations:
        return [], []
    by_id = {g["id"]: g for g in generations[model]}
    shared = [(b, by_id[b["id"]]) for b in generations[baseline] if b["id"] in by_id]
    expected = any(b.get("expected") for b, _ in shared)
    header = (["prompt (last user turn)"] + (["expected"] if expected else [])
              + [f"{baseline} answer", f"{baseline} score", f"{model} answer", f"{model} score"])
    rows = []
    for b, m in shared[:limit]:
        earlier = b.get("turns", 1) - 1
        prompt = shown(b["prompt"], 160) + (f" (+{earlier} earlier messages)" if earlier > 0 else "")
        rows.append([prompt] + ([b.get("expected") or ""] if expected else [])
                    + [shown(b["answer"], 240), score_text(b), shown(m["answer"], 240), score_text(m)])
    return header, rows


# ---------------------------------------------------------------- the combined loss

def loss_part_rows(dpo_settings: dict, evaluations: dict[str, dict]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes): each term of DPO's loss on the held-out pairs at the start (policy = SFT) and end."""
    types = list(dpo_settings.get("loss_type") or [])
    weights = list(dpo_settings.get("loss_weights") or [1.0] * len(types))
    start, end = evaluations.get("sft", {}).get("metrics", {}), evaluations.get("dpo", {}).get("metrics", {})
    header = ["loss term", "weight", "held-out, start of DPO (policy = SFT)", "held-out, end of DPO", "weighted change"]
    rows, notes, totals = [], [], [0.0, 0.0]
    for loss_type, weight in zip(types, weights):
        key, label = LOSS_TERMS.get(loss_type, (None, loss_type))
        if key is None:
            notes.append(f"loss term {loss_type}: not computed on the held-out pairs (only sigmoid and sft are)")
            totals = None
            continue
        # At the start the policy is the reference: every margin is 0 and the sigmoid term is ln 2 exactly.
        first = math.log(2) if loss_type == "sigmoid" else start.get(key)
        last = end.get(key)
        if first is None or last is None:
            notes.append(f"loss term {loss_type}: needs the evaluation of both sft and dpo (eval.models)")
            totals = None
            continue
        rows.append([f"{loss_type}: {label}", f"{weight:g}", f"{first:.4f}", f"{last:.4f}",
                     f"{weight * (last - first):+.4f}"])
        if totals is not None:
            totals = [totals[0] + weight * first, totals[1] + weight * last]
    if rows and totals is not None and len(rows) > 1:
        rows.append(["total (weighted sum)", "", f"{totals[0]:.4f}", f"{totals[1]:.4f}",
                     f"{totals[1] - totals[0]:+.4f}"])
    return header, rows, notes


# ---------------------------------------------------------------- gaps

def gap_lines(evaluations: dict[str, dict], comparisons: list[dict], judge_eval: dict | None) -> list[str]:
    """One line per distinct reason, naming every <source>.<metric> it applies to (metrics.json: `unavailable`)."""
    reasons: dict[str, list[str]] = {}
    for name, result in evaluations.items():
        for metric, reason in result.get("unavailable", {}).items():
            reasons.setdefault(reason, []).append(f"{name}.{metric}")
        for note in result.get("notes", []):
            reasons.setdefault(note, []).append(name)
    for c in comparisons:
        for metric, reason in c.get("unavailable", {}).items():
            reasons.setdefault(reason, []).append(f"{c['model']}_vs_{c['baseline']}.{metric}")
    if judge_eval:
        for metric, reason in judge_eval.get("unavailable", {}).items():
            reasons.setdefault(reason, []).append(f"judge.{metric}")
    return [f"{', '.join(names)}: {reason}." for reason, names in reasons.items()]
