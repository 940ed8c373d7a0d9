"""The report's data section: counts per stage and reason, the mix, length histograms."""

import re

from data_fixtures import hh, oasst_tree, write_rows

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings, normalize
from prefalign.data.split import SplitSettings, split
from prefalign.report import document
from prefalign.report.data import data_section


def stats_of_a_small_run(tmp_path):
    hh_rows = [hh(f"What is {i} + 1?", str(i + 1), "0") for i in range(30)] + [hh("q", "a", "a"), hh("x" * 150, "a", "b")]
    raw = {"hh": write_rows(tmp_path / "hh.jsonl", hh_rows), "oa": write_rows(tmp_path / "oa.jsonl", oasst_tree())}
    datasets = []
    for name, fmt in (("hh", "hh-rlhf"), ("oa", "oasst1")):
        datasets.append(normalize(raw[name], NormalizeSettings(format=fmt, name=name),
                                  FilterSettings(max_chars=100, max_tokens=500), tmp_path / name / "n.jsonl",
                                  tmp_path / name / "r.jsonl"))
    mix = split([tmp_path / "hh/n.jsonl", tmp_path / "oa/n.jsonl"], SplitSettings(caps=["hh=20"]),
                tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "rejects.jsonl")
    return datasets, mix


def test_markdown_has_the_ledger_stages_mix_and_histograms(tmp_path):
    datasets, mix = stats_of_a_small_run(tmp_path)
    text = document.markdown("t", [data_section(datasets, mix)])
    assert text.startswith("# t\n\n## Data ledger")
    assert "| hh | hh-rlhf |" in text and "identical 1, too_long 1" in text
    assert "| oa | adapt | message | 8 | 3 pairs from 7 messages | 1 | not_in_pair 1 |" in text
    assert "| (mix) | cap | pair | 33 | 23 | 10 | over_cap 10 |" in text
    mix_total = re.search(r"\| total \| (\d+) \| (\d+) \|", text)
    assert int(mix_total[1]) + int(mix_total[2]) == mix["kept"]
    assert "### hh (characters)" in text and "### hh (ChatML bytes)" in text
    assert "| 8-15 | 30 | 0 | 0 |" in text  # the 30 kept hh prompts are 14-15 characters long


def test_html_is_self_contained_and_escaped(tmp_path):
    datasets, mix = stats_of_a_small_run(tmp_path)
    datasets[0]["dataset"] = "<hh & co>"
    page = document.html("t", [data_section(datasets, mix)])
    assert "<svg" in page and "http:" not in page and "https:" not in page  # names no outside address
    assert "&lt;hh &amp; co&gt;" in page and "<hh & co>" not in page
    assert page.count("<table>") == 3 + page.count("<details")  # ledger, stages, mix; a table per histogram
