"""The report's guidance sections: training health (from each training step's metrics.json)
and the human A/B win rate (from `prefalign ab import`, when the config names ratings).

prefalign.report.render places them right after the report's summary, so warnings are seen
first. Reads only what it is given.
"""

from __future__ import annotations

from prefalign.report.document import Section, Table, Text

SIGNALS = {
    "not_finite": "NaN or infinite loss",
    "loss_spike": "loss spike",
    "accuracy_high": "preference accuracy above the overfitting bound",
    "accuracy_low": "preference accuracy stuck near chance",
    "kl_high": "drift from the reference beyond kl_max",
}


# ---------------------------------------------------------------- content

def health_rows(training: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    header = ["step", "signal", "steps", "last value", "bound", "what it means"]
    rows = []
    for step, metrics in training.items():
        health = metrics.get("health")
        if not health:
            rows.append([step, "not monitored", "", "", "", ""])
            continue
        if not health["warnings"]:
            rows.append([step, "monitor off" if health["status"] == "off" else "ok",
                         f"{health['logs_checked']} logged steps checked", "", "", ""])
        for w in health["warnings"]:
            rows.append([step, SIGNALS.get(w["signal"], w["signal"]),
                         f"{w['first_step']}-{w['last_step']} ({w['times']}x)", f"{w['last_value']:.4g}",
                         f"{w['threshold']:.4g}", w["message"]])
    return header, rows


def health_summary(training: dict[str, dict], evaluations: dict[str, dict]) -> list[str]:
    warned = [f"{step.upper()}: {', '.join(w['signal'] for w in m['health']['warnings'])}"
              for step, m in training.items() if m.get("health") and m["health"]["warnings"]]
    if not warned:
        monitored = [step.upper() for step, m in training.items() if m.get("health")]
        return [f"No health warnings ({', '.join(monitored)} monitored)." if monitored else
                "Training was not monitored."]
    lines = ["Health warnings (thresholds: the config's health section): " + "; ".join(warned) + ". Preference "
             "accuracy should climb to 0.6-0.7 on the training batches; above 0.8 suggests overfitting, stuck at "
             "0.5-0.55 too little learning."]
    high = next((w for w in training.get("dpo", {}).get("health", {}).get("warnings", [])
                 if w["signal"] == "accuracy_high"), None)
    held_out = evaluations.get("dpo", {}).get("metrics", {}).get("implicit_reward_accuracy")
    if high is not None and held_out is not None:
        gap = high["last_value"] - held_out
        lines.append(f"Overfitting check: DPO preference accuracy {high['last_value']:.3f} on the last training "
                     f"batches against {held_out:.3f} on the held-out pairs (implicit reward), a gap of {gap:.3f}"
                     + (": a small gap means the task is easy rather than memorized." if gap < 0.1 else
                        ": a large gap is what overfitting looks like."))
    return lines


def ab_lines(ab: dict | None) -> list[str]:
    if ab is None:
        return ["Not rated yet: `snakemake export_ab_sheet` writes a blind sheet (results/ab/sheet.csv and "
                "sheet.html); set `ab.ratings` to the filled CSV and rerun to see the human win rate here."]
    low, high = ab["interval"]
    sides = ab["chosen_side"]
    return [
        f"Human win rate of DPO over SFT: {ab['win_rate']:.3f} [{low:.3f}, {high:.3f}] ({ab['confidence']:.0%} "
        f"interval) from {ab['ratings']} ratings by {ab['raters']} rater(s) of {ab['items_rated']} of "
        f"{ab['sheet_items']} blind items: DPO preferred {ab['wins']}, SFT preferred {ab['losses']}, ties {ab['ties']}.",
        f"Method: {ab['method']}.",
        f"Sides chosen (the order was random, so a strong lean is position bias): A {sides['A']}, B {sides['B']}, "
        f"tie {sides['tie']}.",
    ]


# ---------------------------------------------------------------- the sections

def health_section(training: dict[str, dict], evaluations: dict[str, dict]) -> Section:
    blocks = [Text(line) for line in health_summary(training, evaluations)]
    return Section("health", "Training health", blocks + [Table(*health_rows(training), html_id="health")])


def ab_section(ab: dict | None) -> Section:
    return Section("ab", "Human A/B evaluation",
                   [Text(line, html_id="ab-win-rate" if i == 0 and ab else None) for i, line in enumerate(ab_lines(ab))])
