"""Comments that cannot drift: config.yaml's header, the headers of configs/*.yaml and the presets'
descriptions (prefalign.presets.DESCRIPTIONS) say what a run uses, in a form checked here against
the config's one resolution (prefalign.config.resolve).

- A fact is `section.key value` or `section.key: value`, the value written in YAML (0.3, false,
  [sigmoid, sft]); it must equal the resolved value.
- A claim is a phrase of CLAIMS ("LoRA", "on-policy", "all weights", ...); where one appears (facts
  aside), the resolved config must bear it out. A negation ("no LoRA") fails too: state it as a fact.
- In config.yaml's header and in the descriptions every number belongs to a fact, to a claim
  ("4-bit"), or, in a description, to its GPU memory range (checked against presets.pick, the
  choice `prefalign init` makes) and the parenthesized example cards after it. So no figure can be
  written there that this test does not check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from prefalign import presets
from prefalign.config.resolve import resolve, resolve_mapping
from prefalign.evaluation.judges import choose_judges

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
SECTIONS = sorted(key for key, value in resolve([REPO / "config.yaml"]).config.items() if isinstance(value, dict))
FACT = re.compile(rf"\b({'|'.join(SECTIONS)})\.([a-z_0-9]+):? (\[[^\]]*\]|[^\s,;)]+)")
STEPS = ("sft", "dpo")


def judge(config: dict) -> str:
    return choose_judges(config).evaluation.kind


# phrase (a regular expression) -> (what it claims, whether the resolved config bears it out)
CLAIMS = {
    r"\bLoRA\b": ("a training step trains LoRA adapters", lambda c: any(c[s]["use_lora"] for s in STEPS)),
    r"\bQLoRA\b|\b4-bit\b": ("4-bit QLoRA", lambda c: any(c[s]["use_lora"] and c[s]["precision"] == "4bit"
                                                          for s in STEPS)),
    r"\ball weights\b": ("a training step trains all weights", lambda c: not all(c[s]["use_lora"] for s in STEPS)),
    r"\bon-policy\b": ("DPO on on-policy pairs", lambda c: c["dpo"]["pairs"] in ("onpolicy", "mixed")),
    r"\boffline pairs\b": ("DPO on the data's pairs", lambda c: c["dpo"]["pairs"] in ("offline", "mixed")),
    r"\btask verifier\b": ("the task verifier judges", lambda c: judge(c) == "task"),
    r"\bNLL\b": ("an NLL term in DPO's loss", lambda c: "sft" in c["dpo"]["loss_type"]),
    r"\bCPU\b": ("training on the CPU", lambda c: c["gpu"]["count"] == 0),
    r"\bone GPU\b": ("one GPU per training job", lambda c: c["gpu"]["count"] == 1),
    r"\bbf16\b": ("bf16 on a GPU", lambda c: c["gpu"]["count"] > 0 and c["dpo"]["precision"] in ("auto", "bf16")),
    r"\bFP8\b": ("FP8 where it runs (a GPU, LoRA, precision auto or fp8)",
                 lambda c: c["gpu"]["count"] > 0 and c["dpo"]["use_lora"] and c["dpo"]["precision"] in ("auto", "fp8")),
}
# A description's GPU memory range (GiB, as presets.pick reads it) and the example cards after it.
MEMORY = re.compile(r"(?:under (?P<under>\d+) GiB|(?P<low>\d+) to (?P<high>\d+) GiB|(?P<least>\d+) GiB or more)"
                    r"(?:\s*\([^)]*\))?")


def value(text: str):
    parsed = yaml.safe_load(text)
    if isinstance(parsed, str):  # YAML 1.1 reads 5e-06 as a string
        try:
            return float(parsed)
        except ValueError:
            return parsed
    return parsed


def header(path: Path, until: str | None = None) -> str:
    """The file's full-line comments from its top: up to the line starting with `until`, else up to the first key."""
    lines = []
    for line in path.read_text().splitlines():
        if (until and line.startswith(until)) or (not until and line.strip() and not line.startswith("#")):
            break
        if line.startswith("#"):
            lines.append(line.lstrip("# "))
    return "\n".join(lines)


def problems(text: str, config: dict, claims: bool = True, numbers: bool = True) -> tuple[list[str], int]:
    """(every fact, claim or unchecked number of `text` the resolved `config` contradicts, how many facts)."""
    found = []
    facts = FACT.findall(text)
    for section, key, written in facts:
        if key not in config[section]:
            found.append(f"{section}.{key}: no such key")
        elif config[section][key] != value(written):
            found.append(f"{section}.{key}: says {written}, resolves to {config[section][key]!r}")
    prose = FACT.sub(" ", text)
    for phrase, (claim, holds) in CLAIMS.items():
        if claims and re.search(phrase, prose) and not holds(config):
            found.append(f"{re.search(phrase, prose)[0]!r} claims {claim}, which the resolved config does not")
    if numbers:
        rest = MEMORY.sub(" ", prose)
        for phrase in CLAIMS:
            rest = re.sub(phrase, " ", rest)
        found += [f"an unchecked number: {m[0]} (in '{' '.join(rest[max(0, m.start() - 25):m.end() + 10].split())}')"
                  for m in re.finditer(r"\d+(?:[.,]\d+)*(?:e-?\d+)?", rest)]
    return found, len(facts)


def test_config_yaml_header_says_what_the_default_run_uses():
    config = resolve([REPO / "config.yaml"]).config
    text = header(REPO / "config.yaml", until="datasets:")
    found, facts = problems(text, config)
    assert found == []
    assert facts >= 10  # the header states the default's training values as facts


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_the_example_configs_headers_hold_their_facts(path):
    """Facts only: these headers also explain what a setting rules out ("FP8 needs LoRA")."""
    found, facts = problems(header(path), resolve([path]).config, claims=False, numbers=False)
    assert found == [], f"{path.name}: {found}"
    assert facts >= (6 if path.name == "gpu.yaml" else 0)


@pytest.mark.parametrize("name", presets.NAMES)
def test_each_presets_description_says_what_it_sets(name):
    config = resolve_mapping({**DEFAULT, "preset": name}, [REPO / "config.yaml"]).config
    text = presets.DESCRIPTIONS[name]
    found, facts = problems(text, config)
    assert found == [], f"{name}: {found}"
    assert facts >= 2
    memory = MEMORY.search(text)
    if config["gpu"]["count"] == 0:
        assert memory is None and presets.pick(None) == name
        return
    assert memory is not None, f"{name}: the description names no GPU memory range"
    if memory["under"]:  # (0, under)
        inside, outside = [0.5, int(memory["under"]) - 0.01], [int(memory["under"])]
    elif memory["low"]:  # [low, high)
        low, high = int(memory["low"]), int(memory["high"])
        inside, outside = [low, high - 0.01], [low - 0.01, high]
    else:  # [least, ...)
        inside, outside = [int(memory["least"]), 10_000], [int(memory["least"]) - 0.01]
    assert [presets.pick(g) for g in inside] == [name] * len(inside), f"{name}: {memory[0]}"
    assert name not in [presets.pick(g) for g in outside], f"{name}: {memory[0]}"


def test_a_changed_value_or_claim_is_caught():
    """The checks fail on a fact, a claim or a number that the resolved config does not bear out."""
    config = resolve([REPO / "config.yaml"]).config
    config["dpo"].update(beta=0.3, use_lora=False)
    config["sft"]["use_lora"] = False
    assert problems("dpo.beta: 0.1", config)[0] == ["dpo.beta: says 0.1, resolves to 0.3"]
    assert problems("dpo.use_lora true", config)[0] == ["dpo.use_lora: says true, resolves to False"]
    assert problems("LoRA DPO", config)[0] == [
        "'LoRA' claims a training step trains LoRA adapters, which the resolved config does not"]
    assert [p.split(" (in")[0] for p in problems("DPO 300 steps at lr 1e-3", config)[0]] == [
        "an unchecked number: 300", "an unchecked number: 1e-3"]


def test_the_docs_list_the_presets_descriptions():
    usage = (REPO / "docs" / "usage.md").read_text()
    for name in presets.NAMES:
        assert f"- `{name}`: {presets.DESCRIPTIONS[name]}\n" in usage
