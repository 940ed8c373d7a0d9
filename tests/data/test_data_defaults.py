"""The data stage's defaults, held by behaviour: each test builds the settings a config with an
empty `data` section resolves to (schema defaults, the one resolution) and sits just either side
of a threshold, so changing a default's value (near_dup_threshold 0.8 -> 0.6, decontam_ngram
8 -> 13, max_chars, min_score_ratio, test_fraction, split_seed, ...) fails a test here.
tests/kernel/test_settings.py holds every field's default equal to the schema's; this file holds what
those values do.
"""

from __future__ import annotations

import random

import pytest
from conftest import read_jsonl
from data_fixtures import shp, ultrafeedback, write_rows

from prefalign.config.resolve import resolve_mapping
from prefalign.data.dedup import jaccard, shingles
from prefalign.data.normalize import normalize
from prefalign.data.split import salted_fraction, split
from prefalign.jsonl import write_jsonl
from prefalign.records import make_record, message, prompt_key

VOCABULARY = [f"w{i}" for i in range(5000)]


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    """Every data step's settings of a config that sets no data key."""
    folder = tmp_path_factory.mktemp("defaults")
    write_rows(folder / "raw.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    config = {"datasets": {"mine": {"format": "pairs", "source": "local", "path": str(folder / "raw.jsonl")}},
              "eval": {"comparisons": []}}
    return resolve_mapping(config).settings


def run_split(tmp_path, records, settings):
    path = tmp_path / "mix.jsonl"
    write_jsonl(path, records)
    out = tmp_path / "out"
    stats = split([path], settings, out / "train.jsonl", out / "test.jsonl", out / "rejects.jsonl")
    return read_jsonl(out / "train.jsonl") + read_jsonl(out / "test.jsonl"), read_jsonl(out / "rejects.jsonl"), stats


def edited(words: list[str], rng: random.Random, positions: list[int]) -> str:
    copy = list(words)
    for i in positions:
        copy[i] = rng.choice(VOCABULARY)
    return " ".join(copy)


def near_pair(rng: random.Random, n: int, source: str) -> tuple[dict, dict, float]:
    """A pair and a copy with two words replaced far apart in each field: word 3-gram Jaccard (n-8)/(n+4)."""
    fields = [rng.sample(VOCABULARY, n) for _ in range(3)]
    original = make_record(f"{source}/0", source, [message("user", " ".join(fields[0]))], " ".join(fields[1]),
                           " ".join(fields[2]))
    copies = [edited(f, rng, [n // 4, 3 * n // 4]) for f in fields]
    copy = make_record(f"{source}/1", source, [message("user", copies[0])], copies[1], copies[2])
    similarity = min(jaccard(set(shingles(" ".join(a), 3)), set(shingles(b, 3))) for a, b in zip(fields, copies))
    return original, copy, similarity


def test_near_duplicates_just_above_the_threshold_go_and_just_below_stay(tmp_path, defaults):
    settings = defaults["split"]
    rng = random.Random(7)
    above_a, above_b, above = near_pair(rng, 57, "above")  # 49/61 = 0.803
    below_a, below_b, below = near_pair(rng, 55, "below")  # 47/59 = 0.797
    assert 0.8 <= above < 0.81 and 0.79 < below < 0.8
    kept, ledger, _ = run_split(tmp_path, [above_a, above_b, below_a, below_b],
                                type(settings)(**{**settings.to_dict(), "test_fraction": 1e-9}))
    assert [(e["id"], e["reason"]) for e in ledger] == [("above/1", "near_duplicate")]
    assert {r["id"] for r in kept} == {"above/0", "below/0", "below/1"}


def test_decontamination_counts_word_8_grams_and_half_of_them(tmp_path, defaults):
    """A 12-word test question inside a 16-word training turn: 5 of its 9 word 8-grams (0.56 >= 0.5).
    With 13-grams the question is one n-gram the turn does not hold; at an overlap of 0.6 it passes."""
    settings = defaults["split"]
    question = "which of the rivers in northern europe freezes first in cold winter"
    assert len(question.split()) == 13 - 1
    test_record = make_record("t/0", "t", [message("user", question + "?")], "The Neva.", "No idea.")
    train_record = make_record("t/1", "t", [message("user", f"Tell me: {question}, please quickly!")],
                               "Probably the Neva.", "Rivers do not freeze.")
    salt = next(f"s{k}" for k in range(10000) if salted_fraction(f"s{k}", prompt_key(test_record["prompt"])) < 0.1
                and salted_fraction(f"s{k}", prompt_key(train_record["prompt"])) >= 0.1)
    kept, ledger, _ = run_split(tmp_path, [test_record, train_record],
                                type(settings)(**{**settings.to_dict(), "split_seed": salt}))
    assert [(e["id"], e["reason"]) for e in ledger] == [("t/1", "contaminated")]
    assert "56% of the prompt's 8-grams" in ledger[0]["detail"]


def test_the_split_holds_out_a_tenth_of_prompts_by_the_prefalign_salt(tmp_path, defaults):
    settings = defaults["split"]
    records = [make_record(f"p/{i}", "p", [message("user", f"Question number {i} about a topic of its own?")],
                           f"Answer {i}.", f"Wrong {i}.") for i in range(2000)]
    kept, _, stats = run_split(tmp_path, records, type(settings)(**{**settings.to_dict(), "decontaminate": False,
                                                                    "near_dedup": False}))
    assert (settings.test_fraction, settings.split_seed) == (0.1, "prefalign")
    assert stats["test"] == 204  # this salt's share of these 2,000 prompts (0.1 expected, binomial sd 0.007)
    first_in_test = next(r["id"] for r in records if salted_fraction("prefalign", prompt_key(r["prompt"])) < 0.1)
    assert first_in_test == "p/5"


def normalize_with(tmp_path, defaults, fmt, rows):
    path = write_rows(tmp_path / "raw.jsonl", rows)
    settings = type(defaults["normalize:mine"])(**{**defaults["normalize:mine"].to_dict(), "format": fmt})
    out = tmp_path / "out"
    normalize(path, settings, defaults["filters"], out / "n.jsonl", out / "r.jsonl")
    return read_jsonl(out / "n.jsonl"), read_jsonl(out / "r.jsonl")


def test_max_chars_drops_a_pair_of_8001_characters_and_keeps_8000(tmp_path, defaults):
    """8,000 characters, about the 2,048 tokens of the GPU presets' max_length: on rows in the published
    shapes it drops none of hh-rlhf's real lengths and a few percent of UltraFeedback's (bench/data_shares.py)."""
    prompt = "q" * 1000
    rows = [{"prompt": prompt, "chosen": "a" * 7000, "rejected": "b"},  # 8000: kept
            {"prompt": prompt, "chosen": "c" * 7001, "rejected": "d"}]  # 8001: too long
    kept, ledger = normalize_with(tmp_path, defaults, "pairs", rows)
    assert len(kept) == 1 and [(e["line"], e["reason"]) for e in ledger] == [(2, "too_long")]
    assert defaults["filters"].max_tokens == 0  # off: the trainers truncate at their max_length


def test_min_score_ratio_two_keeps_2_and_drops_1_9(tmp_path, defaults):
    rows = [shp("Post one?", "A.", "B.", 20, 10), shp("Post two?", "C.", "D.", 19, 10)]
    kept, ledger = normalize_with(tmp_path, defaults, "shp", rows)
    assert [r["meta"]["score_ratio"] for r in kept] == [2.0]
    assert [(e["line"], e["reason"]) for e in ledger] == [(2, "low_score_ratio")]


def test_tied_scores_are_dropped_and_a_half_point_apart_kept(tmp_path, defaults):
    rows = [ultrafeedback("Tie?", "A.", "B.", 7.0, 7.0), ultrafeedback("Close?", "C.", "D.", 7.5, 7.0)]
    kept, ledger = normalize_with(tmp_path, defaults, "ultrafeedback", rows)
    assert len(kept) == 1 and [(e["line"], e["reason"]) for e in ledger] == [(1, "tied_scores")]


def test_the_other_data_defaults(defaults):
    """Switches whose behaviour the normalize and split tests check one by one, pinned as a set."""
    filters, split_settings, normalize_settings = defaults["filters"], defaults["split"], defaults["normalize:mine"]
    assert (filters.drop_empty, filters.drop_identical, filters.dedup, filters.consecutive_turns) == (
        True, True, True, "merge")
    assert (split_settings.dedup, split_settings.near_dedup, split_settings.decontaminate) == (True, True, True)
    assert (split_settings.near_dup_ngram, split_settings.minhash_perms, split_settings.decontam_min_words,
            split_settings.contradictions) == (3, 128, 4, "keep_majority")
    assert normalize_settings.on_bad_record == "error" and filters.tokenizer == "bytes"  # auto, for the tiny model
