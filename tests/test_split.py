from prefalign.records import make_record, message, prompt_key, write_jsonl
from prefalign.split import SplitSettings, split

from conftest import run_cli, read_jsonl


def records(source, n, repeats=3, template="What is {} + 1?"):
    out = []
    for i in range(n):
        for j in range(repeats):  # several pairs share each prompt
            out.append(make_record(f"{source}/{i}/{j}", source, [message("user", template.format(i))], str(i + 1),
                                   f"{i + j + 7}"))
    return out


def test_split_keeps_each_prompt_in_one_split_and_is_stable(tmp_path):
    a = tmp_path / "a.jsonl"
    write_jsonl(a, records("a", 400))
    train, test, ledger, stats = split([a], SplitSettings(test_fraction=0.2))
    train_keys = {prompt_key(r["prompt"]) for r in train}
    test_keys = {prompt_key(r["prompt"]) for r in test}
    assert not train_keys & test_keys
    assert 0.13 < len(test_keys) / 400 < 0.27
    assert stats["in"] == 1200 == stats["train"] + stats["test"] + stats["dropped"]
    # The split of a prompt does not depend on the other records in the mix.
    b = tmp_path / "b.jsonl"
    write_jsonl(b, records("b", 50, repeats=1, template="What number comes after {}?"))
    _, test2, _, _ = split([b, a], SplitSettings(test_fraction=0.2))
    assert {r["id"] for r in test} <= {r["id"] for r in test2}


def test_cross_dataset_duplicates_are_ledgered(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, records("a", 10, repeats=1))
    write_jsonl(b, [dict(r, id=r["id"].replace("a/", "b/"), source="b") for r in records("a", 3, repeats=1)])
    train, test, ledger, stats = split([a, b], SplitSettings())
    assert len(ledger) == 3 and all(e["reason"] == "duplicate" and e["source"] == "b" for e in ledger)
    assert stats["per_source"]["b"]["duplicate"] == 3


def test_cli_split(tmp_path):
    a = tmp_path / "a.jsonl"
    write_jsonl(a, records("a", 100))
    run_cli("split", "--inputs", a, "--train", tmp_path / "train.jsonl", "--test", tmp_path / "test.jsonl",
            "--rejects", tmp_path / "rej.jsonl", "--stats", tmp_path / "stats.json", "--test-fraction", "0.3")
    assert len(read_jsonl(tmp_path / "train.jsonl")) + len(read_jsonl(tmp_path / "test.jsonl")) == 300
