"""The report's answer to "did DPO help?", and everything a reader needs to trust it.

- `verdict_lines`: the report's first line per comparison: the verdict (prefalign.evaluation.
  verdict: better / no measurable change / worse from the win rate's 95% interval, `cannot tell`
  on a judge not shown above chance, `within rerun noise` for a gain under the rerun spread),
  naming the judge and its held-out accuracy, with the length-controlled verdict (first, where
  it differs from the raw one).
- `judges_line`: which judge picked DPO's pairs and which graded its answers, and why they are
  independent; `trust_lines`: how far to trust the judge (its held-out accuracy, its agreement
  with the task verifier where it can be checked).
- `judge_lines`: each judge and why it was chosen (eval.judge, onpolicy.judge, `auto`
  resolved), and the evaluation judge's held-out pairwise accuracy in full.
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

from prefalign.evaluation.verdict import WITHIN_NOISE, headline, rerun_noise

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

def _verdict_word(word: str) -> str:
    return {"better": "better", "worse": "worse", "no measurable change": "no measurable change",
            "cannot tell": "cannot tell"}.get(word, word or "no verdict")


def _judge_phrase(c: dict) -> str:
    """`the trained reward-model judge (held-out pairwise accuracy ...)`: the judge, weighed."""
    trust = c.get("verdict", {}).get("judge") or {}
    text = f"the {judge_name(c['judge'])} judge"
    if trust.get("interval"):
        text += (f" (held-out pairwise accuracy {interval_text(trust['accuracy'], trust['interval'])} on "
                 f"{trust['pairs']} test pairs)")
    return text


def verdict_lines(comparisons: list[dict], spread: dict | None = None) -> list[str]:
    """The report's first line per comparison: the verdict, weighed by the judge's held-out accuracy, with the
    length-controlled verdict (said first where it differs) and the rerun noise floor where it was measured."""
    if not comparisons:
        return ["No comparison was run (eval.comparisons is empty), so this report cannot say whether DPO helped; "
                "set eval.comparisons: [[dpo, sft]]."]
    lines = []
    for c in comparisons:
        g, v = c["greedy"], c.get("verdict", {})
        model, baseline = c["model"].upper(), c["baseline"].upper()
        lc = g.get("lc") or {}
        noise = rerun_noise(g["win_rate"], (spread or {}).get(f"{c['model']}_vs_{c['baseline']}.win_rate"))
        word = headline(v.get("result"), noise)
        rate = (f"greedy win rate {interval_text(g['win_rate'], g['interval'])} over {g['prompts']} held-out prompts "
                f"({g['wins']} wins, {g['ties']} ties, {g['losses']} losses)")
        lengths = g.get("lengths") or {}
        length_text = (f"mean answer tokens {model} {lengths['model']:.1f} vs {baseline} {lengths['baseline']:.1f}"
                       if lengths.get("model") is not None else "")
        lc_text = (f"length-controlled {interval_text(lc['win_rate'], lc['interval'])}"
                   if lc.get("win_rate") is not None else "")
        judge = _judge_phrase(c)
        raw, lc_word = v.get("raw"), v.get("length_controlled")
        if word == "cannot tell":
            line = (f"Did {model} help? Cannot tell: the {judge_name(c['judge'])} judge is not shown to rank answers "
                    f"better than chance ({v['judge']['why']}), so its {rate}" + (f" and {lc_text}" if lc_text else "")
                    + " say nothing either way.")
        elif word == WITHIN_NOISE:
            line = (f"Did {model} help? Within rerun noise: on {judge}, {model}'s {rate} lies "
                    f"{'above' if noise['gain'] > 0 else 'below'} 0.5, but its gain of {noise['gain']:+.3f} is smaller "
                    f"than 2 sd ({noise['floor']:.3f}) of the win rate over {noise['runs']} reruns with other seeds "
                    f"(sd {noise['sd']:.3f}" + (f", range {noise['min']:.3f}-{noise['max']:.3f}" if "min" in noise and
                                               "max" in noise else "") + ")"
                    + (f"; {lc_text} ({_verdict_word(lc_word)})" if lc_text else "") + ".")
        elif lc_text and not v.get("length_agrees", True):
            line = (f"Did {model} help? {_verdict_word(raw).capitalize()} on the raw win rate, but "
                    f"{_verdict_word(lc_word)} once answer length is controlled: {model} vs {baseline} on {judge}, "
                    f"{rate}; {lc_text}; {length_text} (part of the raw preference follows answer length).")
        else:
            opening = {"better": f"Yes: {model} is better than {baseline}",
                       "worse": f"No: {model} is worse than {baseline}",
                       "no measurable change": f"No measurable change from {baseline} to {model}"}.get(word, "No verdict")
            where = {"better": "an interval above 0.5", "worse": "an interval below 0.5",
                     "no measurable change": "an interval that contains 0.5"}.get(word, "")
            line = (f"Did {model} help? {opening} on {judge}: {rate}, {where}"
                    + (f"; {lc_text} ({_verdict_word(lc_word)} too)" if lc_text else "") + ".")
        if noise is not None and word != WITHIN_NOISE:
            line += (f" Rerun spread of this win rate over {noise['runs']} seeds: sd {noise['sd']:.3f} "
                     f"(a gain under {noise['floor']:.3f} would be within rerun noise).")
        sampled = v.get("sampled")
        if sampled and sampled != v.get("result"):
            s = c["sampled"]
            line += f" Sampled answers say {sampled}: {interval_text(s['win_rate'], s['interval'])}."
        lines.append(line)
    return lines


def _judge_words(described: dict | None) -> str:
    if not described:
        return "no judge"
    kind = described.get("kind")
    if kind == "task":
        return "the task verifier"
    where = f" ({described['path']})" if described.get("path") else ""
    return f"a reward model trained in this run{where}" if kind == "trained" else f"the reward model{where}"


def judges_line(evaluations: dict[str, dict], pair_judge: dict | None) -> str | None:
    """Which judge picked DPO's pairs and which graded its answers, and why they are independent."""
    first = next(iter(evaluations.values()), {})
    record = first.get("judges")
    if not record:
        return None
    graded = _judge_words(first.get("judge"))
    if record.get("pairs") is None:
        picked = "no judge: DPO trained on the dataset's own chosen/rejected labels (dpo.pairs offline)"
    else:
        picked = _judge_words(pair_judge or {"kind": record["pairs"]["kind"]})
    independence = record.get("independence")
    return (f"Judges: DPO's pairs were picked by {picked}; the answers are graded by {graded}"
            + (f": {independence}." if independence else "."))


def trust_lines(comparisons: list[dict], judge_eval: dict | None) -> list[str]:
    """How far to trust the judge: its held-out accuracy, and its agreement with the task verifier where it can be checked."""
    if not comparisons:
        return []
    c = comparisons[0]
    if c["judge"].get("kind") == "task":
        return ["How far to trust the judge: it is the task verifier, which checks each answer against its task's "
                "rule (exact on task prompts; it scores no other prompt)."]
    trust = (c.get("verdict") or {}).get("judge") or {}
    line = f"How far to trust the judge: {trust.get('why', 'its held-out accuracy was not measured')}"
    parts = []
    if judge_eval and judge_eval["metrics"].get("verifier_agreement") is not None:
        m, i = judge_eval["metrics"], judge_eval.get("intervals", {})
        parts.append(f"on the {m['verifier_pairs']} test pairs the task verifier separates it agrees with the verifier "
                     f"{interval_text(m['verifier_agreement'], i.get('verifier_agreement'))}")
    for comparison in comparisons:
        a = comparison.get("judge_agreement")
        if a:
            parts.append(f"on {a['pairs']} answer pairs ({comparison['model']} vs {comparison['baseline']}) where one "
                         f"answer is right and one wrong it prefers the right one "
                         f"{interval_text(a['rate'], a['interval'])} of the time")
    if parts:
        line += "; " + "; ".join(parts)
    elif judge_eval is not None:
        line += "; no held-out prompt is a task prompt, so its agreement with the task verifier cannot be checked"
    return [line + "."]


# ---------------------------------------------------------------- the judge

def judge_lines(evaluations: dict[str, dict], comparisons: list[dict], judge_eval: dict | None,
                pair_stats: dict | None = None) -> list[str]:
    """Each judge and why it was chosen (the config's resolution), and the judge's held-out accuracy in full."""
    first = next(iter(evaluations.values()), {})
    judge, choice = first.get("judge", {}), first.get("judge_choice") or {}
    described = judge_name(judge) + (f" ({judge['path']})" if judge.get("path") else "")
    lines = [f"Evaluation judge: {described}. Why: {choice.get('why', 'not recorded')}."]
    pairs = (first.get("judges") or {}).get("pairs")
    if pairs:
        pair = (pair_stats or {}).get("judge") or {"kind": pairs["kind"]}
        lines.append(f"Pair judge: {judge_name(pair)}" + (f" ({pair['path']})" if pair.get("path") else "")
                     + f". Why: {pairs.get('why') or 'not recorded'}.")
    if judge_eval:
        m, i = judge_eval["metrics"], judge_eval.get("intervals", {})
        lines.append(f"The evaluation judge's held-out pairwise accuracy: "
                     f"{interval_text(m['accuracy'], i.get('accuracy'))} on {m['pairs']} test pairs (the share where "
                     f"chosen scores above rejected, ties counting half: {m['ties']} here; interval over prompts).")
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
