"""Fuzzing (hypothesis) of the config loader and of every adapter.

The property everywhere: any input gives a clean result (a validated config with every
step's settings; a canonical record), a ledger entry (BadRecord or Rejected, which
normalize turns into a rejects line with a reason), or a clear error (ConfigError or
RecordError naming the key) -- never any other exception.

Adapters are fuzzed through `prefalign.data.adapters.ADAPTERS`, so an adapter added there is
covered without touching this file. Each one gets random JSON, rows built from the key
names its own module mentions, and mutations of valid rows where the synthetic generator
writes its format. `pytest tests/data/test_fuzz.py --hypothesis-show-statistics` prints how
many cases each test ran.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import sys
import types

import pytest
import yaml
from conftest import REPO, read_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefalign.config.resolve import apply_presets, load_config
from prefalign.config.schema import check_config, load_schema, with_defaults
from prefalign.config.steps import step_settings
from prefalign.data import adapters, synthetic
from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings, normalize
from prefalign.errors import ConfigError, RecordError
from prefalign.records import ROLES

SCHEMA = load_schema(REPO / "schemas" / "config.schema.yaml")
DEFAULT_TEXT = (REPO / "config.yaml").read_text()
DEFAULT = yaml.safe_load(DEFAULT_TEXT)
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])

# Values at the edges, where parsers and arithmetic break: beyond float and int64, non-finite, tiny.
extremes = st.sampled_from([10**400, -(10**400), math.nan, math.inf, -math.inf])
edges = extremes | st.sampled_from([0, -1, 1, -0.0, 2**63, 1e308, 5e-324, True, False, "", None, [], {}])
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2, max_value=2) | edges
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
           | st.sampled_from(["", " ", "0", "-1", "1e400", "null", "\x00", "../../etc/passwd", "/tmp/x", "ü" * 5]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=25)


# ---------------------------------------------------------------- the config loader

def leaf_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from leaf_paths(sub, path + (key,))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from leaf_paths(sub, path + (i,))


PATHS = [p for p in leaf_paths(DEFAULT) if p]
yaml_keys = st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.none())
mutation = st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add"]), json_values,
                     yaml_keys)


def mutate(config: dict, path: tuple, how: str, value, key):
    parent = config
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "set":
        parent[last] = value
    elif how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[key] = value


def load_and_build(config, sources=()):
    """What the Snakefile does with a config: validate, fill defaults, build every step's settings."""
    check_config(config, SCHEMA, sources)
    apply_presets(config, sources, SCHEMA)
    return step_settings(with_defaults(config, SCHEMA), sources)


def assert_clear(error: Exception):
    text = str(error)
    assert text.strip() and "Traceback" not in text
    # Every message names the key (or file:line) before saying what was wrong, or is about the whole file.
    assert ":" in text or text.startswith("the config")


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_default_configs_load_or_fail_clearly(mutations):
    config = copy.deepcopy(DEFAULT)
    for path, how, value, key in mutations:
        try:
            mutate(config, path, how, value, key)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    try:
        load_and_build(config)
    except ConfigError as error:
        assert_clear(error)


@FUZZ
@given(json_values)
def test_any_json_value_as_a_config_loads_or_fails_clearly(value):
    try:
        load_and_build(value)
    except ConfigError as error:
        assert_clear(error)


line_edits = st.lists(st.tuples(st.integers(min_value=0, max_value=200), st.sampled_from(["drop", "dup", "insert"]),
                                st.text(max_size=40)), min_size=1, max_size=5)


@FUZZ
@given(line_edits)
def test_edited_config_files_load_or_fail_clearly(tmp_path_factory, edits):
    lines = DEFAULT_TEXT.splitlines()
    for index, how, text in edits:
        index %= len(lines) + 1
        if how == "drop" and index < len(lines):
            del lines[index]
        elif how == "dup" and index < len(lines):
            lines.insert(index, lines[index])
        else:
            lines.insert(index, text)
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        config = load_config(path, SCHEMA)
        step_settings(config, [path])
    except ConfigError as error:
        assert_clear(error)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_as_a_config_file_fail_clearly(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    try:
        config = load_config(path, SCHEMA)
        step_settings(config, [path])
    except ConfigError as error:
        assert_clear(error)


# ---------------------------------------------------------------- adapters

def strings_of(module: types.ModuleType) -> list[str]:
    """Short string constants in a module's functions: the field names an adapter looks for."""
    found: set[str] = set()

    def walk(code):
        for const in code.co_consts:
            if isinstance(const, str) and 0 < len(const) <= 40:
                found.add(const)
            elif isinstance(const, types.CodeType):
                walk(const)

    for value in vars(module).values():
        code = getattr(value, "__code__", None)
        if code is not None and getattr(value, "__module__", None) == module.__name__:
            walk(code)
    return sorted(found)


def valid_rows(fmt: str, count: int = 40) -> list:
    writer = synthetic.WRITERS.get(fmt)
    if writer is None:
        return []
    options = synthetic.SyntheticSettings(format=fmt, records=count, defect_fraction=0.2)
    return list(writer(random.Random(7), options))


def row_strategy(name: str):
    adapt = adapters.ADAPTERS[name]
    module = sys.modules[adapt.__module__]
    keys = strings_of(module) + ["id", "prompt", "chosen", "rejected"]
    turn_text = st.lists(st.tuples(st.sampled_from(["\n\nHuman:", "\n\nAssistant:", "\n\nHuman: ", "\n\nAssistant: ",
                                                    "Human:", "\n\n"]), st.text(max_size=12)), max_size=5)
    texts = st.text(max_size=40) | turn_text.map(lambda parts: "".join(a + b for a, b in parts))
    messages = st.lists(st.fixed_dictionaries({}, optional={"role": st.sampled_from(list(ROLES) + ["bot", 1]),
                                                            "content": texts | scalars}), max_size=4)
    values = edges | texts | scalars | messages | json_values
    built = st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))
    seeds = valid_rows(name)
    strategies = [json_values, built]
    if seeds:
        @st.composite
        def mutated(draw):
            """A valid row with each field kept, replaced (often by an extreme value) or deleted."""
            row = copy.deepcopy(draw(st.sampled_from(seeds)))
            for key in sorted(row):
                how = draw(st.sampled_from(["keep", "keep", "keep", "replace", "extreme", "delete"]))
                if how == "replace":
                    row[key] = draw(values)
                elif how == "extreme":
                    row[key] = draw(extremes)
                elif how == "delete":
                    del row[key]
            if draw(st.booleans()):
                row[draw(st.sampled_from(keys))] = draw(values)
            return row

        strategies += [mutated(), mutated(), st.sampled_from(seeds)]
    return st.one_of(strategies)


def canonical_problem(record) -> str | None:
    """Why `record` is not a canonical preference record (prefalign.records, the data contract), or None."""
    if not isinstance(record, dict):
        return "not a dict"
    for key in ("id", "source"):
        if not isinstance(record.get(key), str):
            return f"{key} is not a string"
    prompt = record.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        return "prompt is not a non-empty list"
    for m in prompt:
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            return f"bad prompt message {m!r}"
    for key in ("chosen", "rejected"):
        value = record.get(key)
        if not (isinstance(value, list) and len(value) == 1 and value[0].get("role") == "assistant"
                and isinstance(value[0].get("content"), str)):
            return f"{key} is not one assistant message"
    if not isinstance(record.get("meta"), dict):
        return "meta is not a dict"
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        return f"not JSON-serializable: {exc}"
    return None


WHERE = adapters.Where("fuzz", "raw.jsonl", 1)


@pytest.mark.parametrize("name", sorted(adapters.ADAPTERS))
def test_every_adapter_gives_a_record_or_a_ledger_reason(name):
    adapt = adapters.ADAPTERS[name]

    @FUZZ
    @given(row_strategy(name))
    def check(row):
        try:
            record = adapt(copy.deepcopy(row), WHERE)
        except adapters.BadRecord as exc:
            assert isinstance(exc.key, str) and exc.key and isinstance(exc.problem, str) and exc.problem
            return
        except adapters.Rejected as exc:
            assert isinstance(exc.reason, str) and exc.reason
            return
        problem = canonical_problem(record)
        assert problem is None, f"{name} made a non-canonical record ({problem}) from {row!r}: {record!r}"

    check()


lines = st.one_of(json_values.map(lambda v: json.dumps(v)), st.text(max_size=60),
                  st.binary(max_size=40).map(lambda b: b.decode("latin-1")))


@pytest.mark.parametrize("name", sorted(adapters.ADAPTERS))
def test_normalize_ledgers_or_stops_clearly_on_any_file(name, tmp_path_factory):
    seeds = [json.dumps(r) for r in valid_rows(name, 10)]

    @FUZZ
    @given(st.lists(lines | st.sampled_from(seeds or ["{}"]), min_size=1, max_size=12),
           st.sampled_from(["error", "quarantine"]))
    def check(rows, on_bad_record):
        path = tmp_path_factory.mktemp("raw") / "raw.jsonl"
        path.write_bytes("\n".join(rows).encode("utf-8", "surrogatepass") + b"\n")
        options = NormalizeSettings(format=name, name="fuzz", on_bad_record=on_bad_record)
        records_path, rejects_path = path.with_name("records.jsonl"), path.with_name("rejects.jsonl")
        try:
            stats = normalize(path, options, FilterSettings(), records_path, rejects_path)
        except RecordError as error:
            assert_clear(error)
            return
        kept, ledger = read_jsonl(records_path), read_jsonl(rejects_path)
        assert stats["in"] == len(kept) + len(ledger)  # nothing disappears silently
        assert all(entry["reason"] for entry in ledger)
        for record in kept:
            assert canonical_problem(record) is None

    check()


def test_nan_in_a_config_is_refused_with_its_key():
    config = copy.deepcopy(DEFAULT)
    config.setdefault("sft", {})["weight_decay"] = math.nan
    with pytest.raises(ConfigError, match=r"sft.weight_decay: expected a number, got nan"):
        load_and_build(config)
