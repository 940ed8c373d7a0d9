"""Step `split`: the mix deduplicated (exact and near), capped, split by prompt and decontaminated."""

import json
import random

import pytest
from conftest import read_jsonl, run_cli

from prefalign.data.split import SplitSettings, split
from prefalign.errors import ConfigError
from prefalign.jsonl import write_jsonl
from prefalign.records import make_record, message, prompt_key

WORDS = ("river stone maple cloud amber lantern harbor velvet copper meadow falcon quartz willow ember summit "
         "orchid canyon glacier thistle cobalt").split()


def records(source, n, repeats=3, template="What is {} + 1?"):
    out = []
    for i in range(n):
        for j in range(repeats):  # several pairs share each prompt
            out.append(make_record(f"{source}/{i}/{j}", source, [message("user", template.format(i))], str(i + 1),
                                   f"{i + j + 7}"))
    return out


def prose(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def run(tmp_path, inputs, **settings):
    """split() into tmp_path/out; returns (train, test, ledger, stats)."""
    out = tmp_path / "out"
    stats = split(inputs, SplitSettings(**settings), out / "train.jsonl", out / "test.jsonl", out / "rejects.jsonl")
    train, test, ledger = (read_jsonl(out / f"{name}.jsonl") for name in ("train", "test", "rejects"))
    assert stats["in"] == stats["kept"] + stats["dropped"] == len(train) + len(test) + len(ledger)
    for before, after in zip(stats["stages"], stats["stages"][1:]):
        assert before["out"] == after["in"]
    return train, test, ledger, stats


def test_split_keeps_each_prompt_in_one_split_and_is_stable(tmp_path):
    a = tmp_path / "a.jsonl"
    write_jsonl(a, records("a", 400))
    train, test, ledger, stats = run(tmp_path, [a], test_fraction=0.2)
    train_keys = {prompt_key(r["prompt"]) for r in train}
    test_keys = {prompt_key(r["prompt"]) for r in test}
    assert not train_keys & test_keys
    assert 0.13 < len(test_keys) / 400 < 0.27
    assert stats["in"] == 1200 and stats["prompts"] == {"train": len(train_keys), "test": len(test_keys)}
    # The split of a prompt does not depend on the other records in the mix.
    b = tmp_path / "b.jsonl"
    write_jsonl(b, records("b", 50, repeats=1, template="What number comes after {}?"))
    _, test2, _, _ = run(tmp_path, [b, a], test_fraction=0.2)
    assert {r["id"] for r in test} <= {r["id"] for r in test2}


def test_cross_dataset_duplicates_are_ledgered(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, records("a", 10, repeats=1))
    write_jsonl(b, [dict(r, id=r["id"].replace("a/", "b/"), source="b") for r in records("a", 3, repeats=1)])
    train, test, ledger, stats = run(tmp_path, [a, b])
    assert len(ledger) == 3 and all(e["reason"] == "duplicate" and e["source"] == "b" for e in ledger)
    assert ledger[0] == {"id": "b/0/0", "source": "b", "file": str(b), "line": 1, "stage": "exact_dedup",
                         "reason": "duplicate", "detail": "same content as a/0/0"}
    assert stats["per_source"]["b"]["duplicate"] == 3
    _, _, ledger, _ = run(tmp_path, [a, b], dedup=False)  # exact copies are near duplicates too
    assert [e["reason"] for e in ledger] == ["near_duplicate"] * 3
    _, _, ledger, _ = run(tmp_path, [a, b], dedup=False, near_dedup=False)
    assert not ledger


def near_dup_corpus(rng, n=200):
    """Pairs with long, distinct texts, then edited copies of some of them (one word changed)."""
    pairs = [make_record(f"o/{i}", "o", [message("user", prose(rng, 30))], prose(rng, 60), prose(rng, 60))
             for i in range(n)]
    copies = []
    for k, original in enumerate(pairs[:20]):
        words = original["chosen"][0]["content"].split()
        words[rng.randrange(len(words))] = "zebra"
        copies.append(dict(original, id=f"copy/{k}", chosen=[message("assistant", " ".join(words).upper())]))
    return pairs, copies


def test_near_duplicates_are_found_and_name_the_pair_they_repeat(tmp_path):
    rng = random.Random(0)
    pairs, copies = near_dup_corpus(rng)
    path = tmp_path / "mix.jsonl"
    write_jsonl(path, pairs + copies)
    _, _, ledger, stats = run(tmp_path, [path], decontaminate=False)
    found = {e["id"]: e for e in ledger if e["reason"] == "near_duplicate"}
    assert set(found) == {c["id"] for c in copies}
    entry = found["copy/3"]
    assert entry["stage"] == "near_dedup" and entry["detail"].startswith("near-identical to o/3 (Jaccard of word 3-grams: "
                                                                         "prompt 1.00, chosen 0.")
    assert stats["dropped_by_reason"] == {"near_duplicate": 20}
    _, _, ledger, _ = run(tmp_path, [path], decontaminate=False, near_dedup=False)
    assert not ledger


def test_pairs_sharing_prompt_and_chosen_but_not_rejected_are_not_near_duplicates(tmp_path):
    """oasst1 best_vs_rest: one prompt, one best reply, several different rejected replies."""
    rng = random.Random(1)
    prompt, best = [message("user", prose(rng, 80))], prose(rng, 120)
    siblings = [make_record(f"s/{k}", "s", prompt, best, prose(rng, 10)) for k in range(5)]
    path = tmp_path / "siblings.jsonl"
    write_jsonl(path, siblings)
    train, test, ledger, _ = run(tmp_path, [path], decontaminate=False)
    assert not ledger and len(train) + len(test) == 5


def test_caps_are_deterministic_and_independent_of_input_order(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, records("a", 40, repeats=1))
    write_jsonl(b, records("b", 30, repeats=1, template="What number comes after {}?"))
    train, test, ledger, stats = run(tmp_path, [a, b], caps=["a=10"], decontaminate=False)
    kept_a = {r["id"] for r in train + test if r["source"] == "a"}
    assert len(kept_a) == 10 and stats["per_source"]["a"]["over_cap"] == 30
    assert stats["per_source"]["b"].get("over_cap", 0) == 0
    assert all(e["detail"] == "dataset a is capped at 10 pairs (40 after deduplication)" for e in ledger)
    train2, test2, _, _ = run(tmp_path, [b, a], caps=["a=10"], decontaminate=False)
    assert {r["id"] for r in train2 + test2 if r["source"] == "a"} == kept_a
    with pytest.raises(ConfigError, match="caps: no input dataset named c"):
        run(tmp_path, [a], caps=["c=3"])
    with pytest.raises(ConfigError, match="caps: expected NAME=N"):
        SplitSettings(caps=["a=ten"])


def test_training_prompts_asking_a_test_question_are_decontaminated(tmp_path):
    records_ = records("a", 300, repeats=1)
    settings = dict(test_fraction=0.2)
    path = tmp_path / "a.jsonl"
    write_jsonl(path, records_)
    _, test, _, _ = run(tmp_path, [path], **settings)
    question = test[0]["prompt"][-1]["content"]
    # The same question at the end of a longer conversation, and reworded: other prompts, so the hash
    # split can put them in train, where they would leak the test answer.
    leaks = [make_record("leak/1", "a", [message("user", "Hi"), message("assistant", "Hello!"),
                                         message("user", question)], "x", "y"),
             make_record("leak/2", "a", [message("user", question.upper().replace("?", " ?!"))], "x", "y")]
    write_jsonl(path, records_ + leaks)
    train, test2, ledger, stats = run(tmp_path, [path], **settings)
    contaminated = {e["id"]: e for e in ledger if e["reason"] == "contaminated"}
    leaked_to_train = {r["id"] for r in leaks} - {r["id"] for r in test2}
    assert leaked_to_train and set(contaminated) == leaked_to_train
    assert all(e["stage"] == "decontaminate" and "occur in test questions" in e["detail"]
               for e in contaminated.values())
    assert [r["id"] for r in test2 if not r["id"].startswith("leak")] == [r["id"] for r in test]
    _, _, ledger, _ = run(tmp_path, [path], decontaminate=False, **settings)
    assert not ledger


def test_stats_count_every_stage(tmp_path):
    rng = random.Random(2)
    pairs, copies = near_dup_corpus(rng, n=60)
    path = tmp_path / "mix.jsonl"
    write_jsonl(path, pairs + copies + pairs[:5])
    _, _, _, stats = run(tmp_path, [path], caps=["o=50"])
    stages = {s["stage"]: s for s in stats["stages"]}
    assert [s["stage"] for s in stats["stages"]] == ["read", "exact_dedup", "near_dedup", "contradiction", "cap",
                                                     "split", "decontaminate"]
    assert stages["read"]["in"] == 85 and stages["exact_dedup"]["dropped"] == 5
    assert stages["near_dedup"]["dropped_by_reason"] == {"near_duplicate": 20}
    assert stages["cap"]["out"] == 50 and stages["split"]["dropped"] == 0


def test_a_damaged_input_line_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, records("a", 2, repeats=1))
    with open(path, "a") as handle:
        handle.write('{"id": "x"}\n')
    result = run_cli("split", "--inputs", path, "--train", tmp_path / "t.jsonl", "--test", tmp_path / "e.jsonl",
                     "--rejects", tmp_path / "r.jsonl", "--stats", tmp_path / "s.json", check=False)
    assert result.returncode == 3 and f"{path}:3: not a normalized record (KeyError" in result.stderr


def test_cli_split(tmp_path):
    a = tmp_path / "a.jsonl"
    write_jsonl(a, records("a", 100))
    run_cli("split", "--inputs", a, "--train", tmp_path / "train.jsonl", "--test", tmp_path / "test.jsonl",
            "--rejects", tmp_path / "rej.jsonl", "--stats", tmp_path / "stats.json", "--test-fraction", "0.3",
            "--caps", "a=250", "--near-dup-threshold", "0.9", "--threads", "1")
    assert len(read_jsonl(tmp_path / "train.jsonl")) + len(read_jsonl(tmp_path / "test.jsonl")) <= 250
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["settings"]["caps"] == ["a=250"] and stats["settings"]["near_dup_threshold"] == 0.9


def test_outputs_are_byte_identical_across_runs_and_thread_counts(tmp_path):
    rng = random.Random(5)
    pairs, copies = near_dup_corpus(rng, n=80)
    path = tmp_path / "mix.jsonl"
    write_jsonl(path, pairs + copies)
    outputs = []
    for threads in ("1", "2", "1"):
        out = tmp_path / f"t{threads}-{len(outputs)}"
        run_cli("split", "--inputs", path, "--train", out / "train.jsonl", "--test", out / "test.jsonl",
                "--rejects", out / "rejects.jsonl", "--stats", out / "stats.json", "--threads", threads)
        outputs.append([(out / f).read_bytes() for f in ("train.jsonl", "test.jsonl", "rejects.jsonl")])
    assert outputs[0] == outputs[1] == outputs[2]
