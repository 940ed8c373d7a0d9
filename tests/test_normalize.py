import gzip
import json

import pytest

from prefalign.filters import FilterSettings
from prefalign.normalize import NormalizeSettings, normalize
from prefalign.records import RecordError

from conftest import read_jsonl, run_cli, write_lines


def hh(q, a, b):
    return {"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {q}\n\nAssistant: {b}"}


def test_every_line_is_kept_or_ledgered_with_a_reason(tmp_path):
    rows = [
        hh("What is 1 + 1?", "2", "3"),
        hh("What is 1 + 1?", "2", "3"),  # duplicate
        hh("What is 2 + 2?", "4", "4"),  # identical
        hh("What is 3 + 3?", "", "5"),  # empty
        {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"},  # mismatch
        hh("Q" * 50, "a" * 60, "b"),  # too long for max_chars 100
    ]
    path = write_lines(tmp_path / "raw.jsonl", rows)
    kept, ledger, stats = normalize(path, NormalizeSettings(name="t"), FilterSettings(max_chars=100))
    assert [r["id"] for r in kept] == ["t/train/000001"]
    assert {e["reason"] for e in ledger} == {"duplicate", "identical", "empty", "prompt_mismatch", "too_long"}
    assert all(e["file"] == str(path) and e["line"] >= 2 and e["detail"] for e in ledger)
    assert stats["in"] == 6 and stats["kept"] == 1 and stats["dropped"] == 5
    assert sum(stats["dropped_by_reason"].values()) == 5


def test_shp_score_ratio_filter(tmp_path):
    base = {"history": "Q?", "human_ref_A": "a", "human_ref_B": "b", "labels": 1, "score_A": 10, "score_B": 4}
    path = write_lines(tmp_path / "shp.jsonl", [base, {**base, "history": "R?", "score_B": 6}])
    kept, ledger, _ = normalize(path, NormalizeSettings(format="shp", name="s"), FilterSettings())
    assert len(kept) == 1 and ledger[0]["reason"] == "low_score_ratio"
    kept, ledger, _ = normalize(path, NormalizeSettings(format="shp", name="s"), FilterSettings(min_score_ratio=0))
    assert len(kept) == 2 and not ledger


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b'{"chosen": "x"\n', "invalid JSON"),
        (b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\xff\xfe"}\n', "not valid UTF-8"),
        (b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b"}\n', "key 'rejected': missing"),
        (b'{"chosen": 1, "rejected": "x"}\n', "key 'chosen': expected a string, got int"),
    ],
)
def test_bad_lines_stop_with_file_line_and_key_or_go_to_quarantine(tmp_path, raw, problem):
    good = json.dumps(hh("What is 1 + 1?", "2", "3")).encode() + b"\n"
    path = tmp_path / "raw.jsonl"
    path.write_bytes(good + raw + good.replace(b"1 + 1", b"2 + 2"))
    with pytest.raises(RecordError) as info:
        normalize(path, NormalizeSettings(name="t"), FilterSettings())
    assert f"{path}:2:" in str(info.value) and problem in str(info.value)
    kept, ledger, stats = normalize(path, NormalizeSettings(name="t", on_bad_record="quarantine"), FilterSettings())
    assert len(kept) == 2 and len(ledger) == 1
    assert ledger[0]["reason"] == "malformed" and ledger[0]["line"] == 2 and problem in ledger[0]["detail"]
    assert stats["in"] == 3


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(RecordError, match="empty"):
        normalize(path, NormalizeSettings(name="t"), FilterSettings())


def test_a_ten_megabyte_line_is_handled(tmp_path):
    big = hh("What is 1 + 1?", "x" * 10_000_000, "3")
    path = write_lines(tmp_path / "raw.jsonl", [big, hh("What is 2 + 2?", "4", "5")])
    kept, ledger, _ = normalize(path, NormalizeSettings(name="t"), FilterSettings())
    assert len(kept) == 1 and ledger[0]["reason"] == "too_long"


def test_gzip_input_and_max_records(tmp_path):
    path = tmp_path / "raw.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(5):
            handle.write(json.dumps(hh(f"What is {i} + 1?", str(i + 1), "0")) + "\n")
    kept, _, stats = normalize(path, NormalizeSettings(name="t", max_records=3), FilterSettings())
    assert len(kept) == 3 and stats["in"] == 3


def test_cli_writes_records_ledger_and_stats(tmp_path):
    path = write_lines(tmp_path / "raw.jsonl", [hh("What is 1 + 1?", "2", "3"), hh("What is 1 + 1?", "2", "3")])
    out = tmp_path / "out"
    run_cli("normalize", "--input", path, "--records", out / "n.jsonl", "--rejects", out / "r.jsonl",
            "--stats", out / "s.json", "--name", "t")
    assert len(read_jsonl(out / "n.jsonl")) == 1
    assert read_jsonl(out / "r.jsonl")[0]["reason"] == "duplicate"
    stats = json.loads((out / "s.json").read_text())
    assert stats["in"] == 2 and stats["kept"] == 1


def test_cli_error_is_one_clear_line_not_a_traceback(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"chosen": "x", "rejected": 5}\n')
    result = run_cli("normalize", "--input", path, "--records", tmp_path / "n.jsonl", "--rejects",
                     tmp_path / "r.jsonl", "--stats", tmp_path / "s.json", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:1: key 'chosen'" in result.stderr
