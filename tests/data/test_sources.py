"""Hub datasets through the real datasets.load_dataset, offline, from a hub cache laid out as
huggingface_hub writes it; each test runs the `prefalign normalize` CLI in a subprocess with
HF_HOME in a temporary folder and HF_HUB_OFFLINE=1."""

import io
import json

import pytest
from conftest import read_jsonl, run_cli
from data_fixtures import dataset_card, fake_hub_dataset, hh, ultrafeedback

REV_A = "0123456789abcdef0123456789abcdef01234567"
REV_B = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    return home / "hub"


def jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet_bytes(rows) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def normalize(tmp_path, *flags, check=True):
    out = tmp_path / "out"
    result = run_cli("normalize", *flags, "--records", out / "n.jsonl", "--rejects", out / "r.jsonl",
                     "--stats", out / "s.json", check=check)
    if not check:
        return result
    return read_jsonl(out / "n.jsonl"), read_jsonl(out / "r.jsonl"), json.loads((out / "s.json").read_text())


def test_a_hub_dataset_at_a_pinned_commit_goes_through_load_dataset(tmp_path, hub):
    rows = [hh(f"What is {i} + 1?", str(i + 1), "0") for i in range(6)] + [hh("What is 0 + 1?", "1", "0")]
    fake_hub_dataset(hub, "fakeorg/fake-hh", REV_A, {
        "README.md": dataset_card({"default": {"train": "data/train-*.jsonl", "test": "data/test.jsonl"}}),
        "data/train-00000.jsonl": jsonl_bytes(rows),
        "data/test.jsonl": jsonl_bytes(rows[:2]),
    })
    kept, ledger, stats = normalize(tmp_path, "--hub-id", "fakeorg/fake-hh", "--revision", REV_A, "--name", "hub_hh")
    assert len(kept) == 6 and ledger[0]["reason"] == "duplicate" and ledger[0]["row"] == 7
    label = f"hf://datasets/fakeorg/fake-hh@{REV_A} [train]"
    assert stats["file"] == label == ledger[0]["file"] == kept[0]["meta"]["file"]
    assert kept[0]["id"] == "hub_hh/train/000001" and kept[0]["meta"]["row"] == 1
    kept, _, _ = normalize(tmp_path, "--hub-id", "fakeorg/fake-hh", "--revision", REV_A, "--split", "test")
    assert len(kept) == 2 and kept[0]["id"].startswith("dataset/test/")


def test_configs_parquet_files_and_data_files_patterns(tmp_path, hub):
    fake_hub_dataset(hub, "fakeorg/uf", REV_A, {
        "README.md": dataset_card({"default": {"train_prefs": "default/train.parquet"},
                                   "small": {"train_prefs": "small/train.parquet"}}),
        "default/train.parquet": parquet_bytes([ultrafeedback(f"Q{i}", "good", f"bad {i}") for i in range(4)]),
        "small/train.parquet": parquet_bytes([ultrafeedback("only one", "good", "bad")]),
    })
    common = ["--hub-id", "fakeorg/uf", "--revision", REV_A, "--format", "ultrafeedback", "--split", "train_prefs"]
    assert len(normalize(tmp_path, *common)[0]) == 4
    assert [r["prompt"][0]["content"] for r in normalize(tmp_path, *common, "--hub-config", "small")[0]] == ["only one"]
    kept, _, _ = normalize(tmp_path, "--hub-id", "fakeorg/uf", "--revision", REV_A, "--format", "ultrafeedback",
                           "--data-files", "small/*.parquet")
    assert len(kept) == 1


def test_the_revision_decides_the_data_even_offline(tmp_path, hub):
    """load_dataset(repo_id) offline would take "the latest cached version"; the pin must hold."""
    for revision, answer in ((REV_A, "old"), (REV_B, "new")):
        fake_hub_dataset(hub, "fakeorg/moving", revision, {
            "README.md": dataset_card({"default": {"train": "train.jsonl"}}),
            "train.jsonl": jsonl_bytes([hh("Which version?", answer, "neither")]),
        })
    for revision, answer in ((REV_A, "old"), (REV_B, "new"), (REV_A, "old")):
        kept, _, _ = normalize(tmp_path, "--hub-id", "fakeorg/moving", "--revision", revision)
        assert kept[0]["chosen"][0]["content"] == answer


@pytest.mark.parametrize("revision, message", [
    ("main", "revision: expected a 40-hex-digit commit for a hub dataset (pinned, so reruns read the same data), "
             "got 'main'"),
    ("v1.0", "revision: expected a 40-hex-digit commit"),
    ("0123456789ABCDEF0123456789ABCDEF01234567", "revision: expected a 40-hex-digit commit"),
])
def test_unpinned_revisions_are_refused(tmp_path, hub, revision, message):
    result = normalize(tmp_path, "--hub-id", "fakeorg/fake-hh", "--revision", revision, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_an_uncached_commit_offline_is_a_clear_error(tmp_path, hub):
    fake_hub_dataset(hub, "fakeorg/fake-hh", REV_A, {"README.md": dataset_card({"default": {"train": "t.jsonl"}}),
                                                     "t.jsonl": jsonl_bytes([hh("q", "a", "b")])})
    result = normalize(tmp_path, "--hub-id", "fakeorg/fake-hh", "--revision", REV_B, check=False)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert f"hf://datasets/fakeorg/fake-hh@{REV_B} [train]: not in the local hub cache" in result.stderr
    assert "HF_HUB_OFFLINE=0" in result.stderr


def test_load_dataset_failures_name_the_dataset(tmp_path, hub):
    fake_hub_dataset(hub, "fakeorg/fake-hh", REV_A, {"README.md": dataset_card({"default": {"train": "t.jsonl"}}),
                                                     "t.jsonl": jsonl_bytes([hh("q", "a", "b")])})
    result = normalize(tmp_path, "--hub-id", "fakeorg/fake-hh", "--revision", REV_A, "--split", "validation",
                       check=False)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert f"hf://datasets/fakeorg/fake-hh@{REV_A} [validation]: datasets.load_dataset failed" in result.stderr
