"""`prefalign config check | show | presets | record`: the workflow config, explained.

- check [FILE ...]: validate a config (several files merge in order, like Snakemake's
  `--configfile a.yaml b.yaml`) and explain every problem in words: where (file:line), which
  key, what was expected and what the key means, with a hint where one helps (a misspelt key,
  `1e-6` read as text); then count the pairs of its local files and refuse a dataset that
  yields none or too few for a step's batch, and warn about steps that repeat the pairs many
  times (prefalign.config.sufficiency). Exit status 1 when there are problems.
- plan [FILE ...]: every job the workflow runs for the config, with the flags its rule passes
  to `prefalign <step>` (what `snakemake --configfile FILE` runs; prefalign.config.plan).
- show [FILE ...]: the resolved config (preset and schema defaults filled), each key marked
  with where its value came from.
- presets: the presets side by side.
- record: write the resolved config of a workflow run (the `record_config` rule).

Assumes FILE defaults to ./config.yaml. Raises ConfigError (exit 2) for a file that cannot be
read; `check` reports every schema problem at once, then the first a step's own checks find.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import yaml

from prefalign import presets
from prefalign.config import plan, sufficiency
from prefalign.config.resolve import read_files, resolve, resolve_mapping
from prefalign.config.schema import format_errors, load_schema, property_schema
from prefalign.errors import ConfigError

NUMBER_AS_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


# ---------------------------------------------------------------- check

def problems(paths: list[Path]) -> list[str]:
    """Every problem of the merged config, explained (empty when it is valid)."""
    from jsonschema import Draft202012Validator

    schema = load_schema()
    config = read_files(paths)
    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        return [explain(error, paths, schema) for error in errors]
    try:
        resolve_mapping(config, paths, schema)
    except ConfigError as exc:
        return [line.strip() for line in str(exc).splitlines() if line.strip() and line.strip() != "invalid config:"]
    return []


def explain(error, paths: list[Path], schema: dict) -> str:
    """One schema error in words: `file:line: key: expected ..., got ... (meaning)` plus a hint."""
    (line,) = format_errors([error], paths, schema)
    hint = hint_for(error, schema)
    return line + (f"\n      hint: {hint}" if hint else "")


def hint_for(error, schema: dict) -> str | None:
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed), key=str)
        guesses = [(key, difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)) for key in extra]
        said = [f"{key!r} -> did you mean {match[0]!r}?" for key, match in guesses if match]
        if said:
            return "; ".join(said)
        section = ".".join(map(str, error.absolute_path))
        return f"{section or 'the top level'} has no such key; every key is listed in schemas/config.schema.yaml"
    if error.validator == "enum" and isinstance(error.instance, str):
        match = difflib.get_close_matches(error.instance, [str(v) for v in error.validator_value], n=1, cutoff=0.5)
        if match:
            return f"did you mean {match[0]!r}?"
    if error.validator == "type" and isinstance(error.instance, str) and NUMBER_AS_TEXT.match(error.instance):
        mantissa, exponent = re.split("[eE]", error.instance)
        dotted = f"{float(mantissa):.1f}e{int(exponent)}"
        plain = f"{float(error.instance):.12f}".rstrip("0").rstrip(".")
        return (f"YAML (as Snakemake reads it) takes {error.instance} for text because its mantissa has no dot; "
                f"write {dotted} or {plain}")
    if error.validator == "type" and error.instance is None:
        return "the key is present but empty; give it a value or delete the line to take the default"
    if error.validator == "pattern" and list(error.absolute_path)[:1] == ["sample"]:
        return "each entry is <dataset>:<count> without spaces, e.g. hh:50000"
    declared = property_schema(schema, list(error.absolute_path))
    if "default" in declared and error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"the default is {json.dumps(declared['default'])}"
    return None


def run_check(paths: list[Path]) -> int:
    names = " + ".join(map(str, paths))
    found = problems(paths)
    if found:
        print(f"{names}: {len(found)} problem{'s' if len(found) != 1 else ''}\n")
        for i, text in enumerate(found, 1):
            print(f"  {i}. {text}")
        print("\nEvery key, its meaning and its default: schemas/config.schema.yaml (docs/usage.md, \"Configuration\").")
        return 1
    resolved = resolve(paths)
    refusals, warnings = sufficiency.assess(resolved.config, sufficiency.count_local(resolved.config), paths)
    if refusals:
        print(f"{names}: {len(refusals)} problem{'s' if len(refusals) != 1 else ''} with the data\n")
        for i, text in enumerate(refusals, 1):
            print(f"  {i}. {text}")
        return 1
    done = resolved.preset
    print(f"{names}: valid. What `snakemake --configfile {' '.join(map(str, paths))}` runs:")
    print(f"  preset {done['preset']}: filled {len(done['from_preset'])} keys the config does not set"
          + (f" ({', '.join(done['from_preset'])})" if done["from_preset"] else ""))
    for line in plan.summary(resolved):
        print(f"  {line}")
    print("  `prefalign config plan` prints every job's flags, `prefalign config show` every resolved value.")
    for warning in warnings:
        print(f"  Warning: {warning}")
    return 0


def run_plan(paths: list[Path], as_json: bool) -> int:
    jobs = plan.jobs(resolve(paths))
    if as_json:
        print(json.dumps(jobs, indent=1))
        return 0
    for job, entry in jobs.items():
        print(f"{job}: prefalign {entry['step']} {entry['flags']}" + (f" {entry['watch']}" if "watch" in entry else ""))
    return 0


# ---------------------------------------------------------------- show / record

def provenance(config: dict, done: dict, user_keys: set[str]) -> dict[str, str]:
    """{path: 'preset <name>' | 'default'} for every key the config file(s) did not set.

    Paths are `section.key` in the sections (datasets counts as one value) and `key` at the top.
    """
    marks = {}
    for section, value in config.items():
        nested = isinstance(value, dict) and section != "datasets"
        for path in ([f"{section}.{k}" for k in value] if nested else [section]):
            if path in done["from_preset"]:
                marks[path] = f"preset {done['preset']}"
            elif path not in user_keys:
                marks[path] = "default"
    return marks


def render(config: dict, marks: dict[str, str], header: list[str]) -> str:
    """The resolved config as YAML, one key per line, each marked with where its value came from."""
    def flow(value) -> str:
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip().removesuffix(
            "\n...").removesuffix("...").strip()

    def line(indent: str, key: str, value, mark: str | None) -> str:
        text = f"{indent}{key}: {flow(value)}"
        return f"{text}  # {mark}" if mark else text

    out = [f"# {h}" if h else "#" for h in header] + [""]
    for section, value in config.items():
        if isinstance(value, dict) and value:
            out.append(f"{section}:" + (f"  # {marks[section]}" if section in marks else ""))
            for key, sub in value.items():
                out.append(line("  ", str(key), sub, marks.get(f"{section}.{key}")))
        else:
            out.append(line("", section, value, marks.get(section)))
    return "\n".join(out) + "\n"


def run_show(paths: list[Path]) -> int:
    resolved = resolve(paths)
    config, done = resolved.config, resolved.preset
    marks = provenance(config, done, set(resolved.user_keys))
    header = [f"The resolved config of {' + '.join(map(str, paths))}: every key the workflow reads.",
              f"Marked: `# preset {done['preset']}` (filled by the preset), `# default` (the schema default);",
              "unmarked keys are set in the file(s)."]
    sys.stdout.write(render(config, marks, header))
    return 0


def record_text(resolved: dict) -> str:
    """The resolved-config record of a run, from the Snakefile's {config, preset, user_keys} JSON."""
    config, done = resolved["config"], resolved["preset"]
    marks = provenance(config, done, set(resolved["user_keys"]))
    header = ["The resolved config of this run (written by the record_config rule): every key the workflow read.",
              f"Marked: `# preset {done['preset']}` (filled by the preset), `# default` (the schema default);",
              "unmarked keys were set in the config file(s)."]
    return render(config, marks, header)


# ---------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("check", "validate config file(s), explain every problem (exit 1 if any), else summarize "
                                 "what runs"),
                       ("plan", "print every job the workflow runs for the config and its settings flags"),
                       ("show", "print the resolved config, each key marked with where its value came from")):
        action = sub.add_parser(name, help=text, description=text)
        action.add_argument("files", type=Path, nargs="*", default=[Path("config.yaml")],
                            help="config file(s), merged in order like --configfile (default: config.yaml)")
        if name == "plan":
            action.add_argument("--json", action="store_true", help="print the jobs as JSON")
    sub.add_parser("presets", help="print the presets side by side (markdown)")
    record = sub.add_parser("record", help="write a run's resolved config (the record_config rule)")
    record.add_argument("--resolved", required=True, help="JSON: {config, preset, user_keys} (from rules/common.smk)")
    record.add_argument("--out", type=Path, required=True, help="output: the resolved config (YAML)")


def main(args: argparse.Namespace) -> None:
    if args.action == "check":
        status = run_check(args.files)
    elif args.action == "plan":
        status = run_plan(args.files, args.json)
    elif args.action == "show":
        status = run_show(args.files)
    elif args.action == "presets":
        for name in presets.NAMES:
            print(f"- {name}: {presets.DESCRIPTIONS[name]}")
        print()
        sys.stdout.write(presets.markdown_table())
        status = 0
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(record_text(json.loads(args.resolved)), encoding="utf-8")
        print(f"wrote {args.out}")
        status = 0
    if status:
        raise SystemExit(status)
