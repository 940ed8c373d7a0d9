"""The manifest's job plan, built while Snakemake reads the workflow (rules/manifest.smk and rule
`all` in rules/common.smk), before any job runs: every job of the run with its inputs, outputs,
params, log, benchmark and container (`workflow_plan`), the paths it may write
(`check_plan_paths`), and whether the last run's files still stand (`previous_run_problems`).
The manifest step (prefalign.provenance.manifest) receives the plan as one JSON argument.

Reads the rules through Snakemake 9's Rule.expand_* methods and Namedlist's public items().
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from prefalign.errors import ConfigError
from prefalign.provenance import staleness

OUTPUT_ROOTS = ("results", "logs", "benchmarks")


def _named_paths(files) -> dict[str, list[str]]:
    """{name: [paths]} of a Snakemake file list (Namedlist): its named entries, then the unnamed
    ones under "_" (those no name covers), through the list's public items() and iteration."""
    named: dict[str, list[str]] = {}
    for name, value in files.items():
        values = value if isinstance(value, list) else [value]
        named.setdefault(name, []).extend(str(f) for f in values)
    covered = {path for paths in named.values() for path in paths}
    unnamed = [str(f) for f in files if str(f) not in covered]
    if unnamed:
        named["_"] = unnamed
    return named


def _job(rule, wildcards: dict) -> dict:
    inputs, _, _, _ = rule.expand_input(wildcards)
    outputs, _ = rule.expand_output(wildcards)
    params, _ = rule.expand_params(wildcards, inputs, outputs, job=None)
    benchmark = rule.expand_benchmark(wildcards)
    return {
        "rule": rule.name,
        "wildcards": dict(wildcards),
        "inputs": _named_paths(inputs),
        "outputs": {name: paths[0] for name, paths in _named_paths(outputs).items()},
        "directories": [str(f) for f in outputs if f.is_directory],
        "log": [str(f) for f in rule.expand_log(wildcards)],
        "benchmark": str(benchmark) if benchmark else None,
        "params": dict(params.items()),
        "container": rule.expand_container_img(wildcards),
    }


def workflow_plan(rules, wildcard_values: dict[str, list], config: dict, skip=("all",),
                  rule_combos: dict[str, list[dict]] | None = None) -> dict:
    """Every job of the workflow (one per rule and wildcard combination) as the manifest records it.

    Called inside the Snakefile (rules/manifest.smk) with `workflow.rules`, after every other
    rule is defined: it expands each rule's inputs, outputs, params, log and benchmark the
    way Snakemake does for a job (Snakemake 9's Rule.expand_* methods). A rule's jobs are
    every combination of its wildcards' values, or exactly the wildcard dicts listed for it
    in `rule_combos` (for wildcards that come in pairs, such as model and baseline of a
    comparison). Combinations that a rule's wildcard constraints exclude are left out.
    Raises ConfigError for a rule with a wildcard that has no entry in `wildcard_values`.
    `unrecorded`: the outputs of the skipped rules (made on demand, outside the manifest by
    design), which the staleness check and `verify` do not count as strays.
    """
    jobs = []
    rule_combos = rule_combos or {}
    for rule in rules:
        if rule.name in skip:
            continue
        if rule.name in rule_combos:
            jobs.extend(_job(rule, combo) for combo in rule_combos[rule.name])
            continue
        names = sorted(rule.wildcard_names)
        unknown = [n for n in names if n not in wildcard_values]
        if unknown:
            raise ConfigError(f"rules/manifest.smk: rule {rule.name} has wildcards {unknown} with no known values; "
                              "add them to MANIFEST_WILDCARDS so the manifest covers its jobs")
        combos: list[dict] = [{}]
        for name in names:
            combos = [{**combo, name: value} for combo in combos for value in wildcard_values[name]]
        for combo in combos:
            outputs, _ = rule.expand_output(combo)
            if all(rule.is_producer(str(f)) for f in outputs):  # the rule's wildcard constraints hold
                jobs.append(_job(rule, combo))
    unrecorded = sorted({path for rule in rules if rule.name in skip for path in _outputs_of(rule, wildcard_values)}
                        - {"results/manifest.json"})
    return {"jobs": jobs, "config": config, "manifest": "results/manifest.json", "unrecorded": unrecorded}


def _outputs_of(rule, wildcard_values: dict[str, list]) -> list[str]:
    """Every output path of a rule, its wildcards expanded over their known values (none for unknown ones)."""
    names = sorted(rule.wildcard_names)
    if any(name not in wildcard_values for name in names):
        return []
    combos: list[dict] = [{}]
    for name in names:
        combos = [{**combo, name: value} for combo in combos for value in wildcard_values[name]]
    paths = []
    for combo in combos:
        outputs, _ = rule.expand_output(combo)
        if all(rule.is_producer(str(f)) for f in outputs):
            paths.extend(str(f) for f in outputs)
    return paths


# Linux caps one command-line argument at 128 KiB (MAX_ARG_STRLEN); the plan travels as one.
PLAN_LIMIT = 120_000


def plan_argument(plan: dict) -> str:
    """The plan as the JSON text the rule passes to `prefalign manifest --plan` (ConfigError if too long)."""
    text = json.dumps(plan, sort_keys=True, default=str)
    if len(text.encode("utf-8")) > PLAN_LIMIT:
        raise ConfigError(f"rules/manifest.smk: the job plan has {len(plan['jobs'])} jobs and {len(text):,} bytes, "
                          f"more than the {PLAN_LIMIT:,} one command-line argument can carry; split the run")
    return text


def plan_inputs(plan: dict) -> list[str]:
    """Everything the manifest reads: every job's inputs, outputs and benchmark file (deduplicated, in order)."""
    seen: dict[str, None] = {}
    for job in plan["jobs"]:
        for paths in job["inputs"].values():
            seen.update(dict.fromkeys(paths))
        seen.update(dict.fromkeys(job["outputs"].values()))
        if job["benchmark"]:
            seen[job["benchmark"]] = None
    return list(seen)


def previous_run_problems(plan: dict, forced_rules=(), force_all: bool = False, strict: bool = False) -> str | None:
    """Why the files of the last finished run no longer stand, or None (rule all in rules/common.smk;
    with `strict`, the `check` and `export` targets, rules/helpers/check.smk).

    Called before any job runs: the manifest on disk is the record; jobs of `forced_rules` (or
    every job with `force_all`), which this invocation rebuilds anyway, are not checked. Without
    `strict` only files modified after the manifest, or whose size differs, are hashed, and a
    missing artifact is left to Snakemake to rebuild; with it every file is hashed and a missing
    artifact is a finding (an audit rebuilds nothing).
    """
    previous, written = staleness.read_previous(Path(plan["manifest"]))
    forced = set(forced_rules)

    def is_forced(job: dict) -> bool:
        return force_all or job["rule"] in forced or any(path in forced for path in job["outputs"].values())

    findings = staleness.check(plan, previous, written, forced=is_forced, full=strict, strict=strict)
    if not findings:
        return None
    what = "nothing was run" + (" (check and export audit the finished run as its manifest records it)" if strict else "")
    return (f"the run's files no longer add up; {what}.\n"
            + staleness.explain(findings, (previous or {}).get("jobs", {}), plan["manifest"]))


def outside_roots(path: str) -> bool:
    """True when `path` would be written outside results/, logs/, benchmarks/ of the working directory."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return True
    return pure.parts[0] not in OUTPUT_ROOTS or len(pure.parts) < 2


def config_keys_in(path: str, config, prefix: str = "") -> list[str]:
    """Config keys whose value (or mapping key) appears in `path`: the likely cause of a bad path."""
    found = []
    if isinstance(config, dict):
        for key, value in config.items():
            here = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(key, str) and len(key) > 2 and key in path:
                found.append(here)
            found.extend(config_keys_in(path, value, here))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found.extend(config_keys_in(path, value, f"{prefix}[{i}]"))
    elif isinstance(config, str) and len(config) > 2 and config in path:
        found.append(prefix)
    return found


def check_plan_paths(plan: dict) -> None:
    """Raise ConfigError when a job would write (output, log, benchmark) outside the three trees."""
    problems = []
    for job in plan["jobs"]:
        written = list(job["outputs"].values()) + job["log"] + ([job["benchmark"]] if job["benchmark"] else [])
        for path in written:
            if outside_roots(path):
                keys = config_keys_in(path, plan.get("config", {}))
                cause = f" (from config key {', '.join(keys)})" if keys else ""
                problems.append(f"rule {job['rule']} would write {path!r}{cause}: outside results/, logs/, benchmarks/")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
