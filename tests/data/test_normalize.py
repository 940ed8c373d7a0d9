"""Step `normalize`: every raw row is kept or ledgered, bad input is named or quarantined."""

import gzip
import json

import pytest
from conftest import read_jsonl, run_cli
from data_fixtures import hh, oasst_message, oasst_tree, shp, ultrafeedback, write_rows
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings, normalize
from prefalign.errors import ConfigError, RecordError


def run(tmp_path, raw, filters=None, **settings):
    """normalize() into tmp_path/out; returns (kept, ledger, stats)."""
    out = tmp_path / "out"
    stats = normalize(raw, NormalizeSettings(**{"name": "t", **settings}), filters or FilterSettings(),
                      out / "normalized.jsonl", out / "rejects.jsonl")
    return read_jsonl(out / "normalized.jsonl"), read_jsonl(out / "rejects.jsonl"), stats


def assert_reconciles(stats, kept, ledger):
    assert stats["in"] == stats["kept"] + stats["dropped"] == len(kept) + len(ledger)
    assert stats["dropped_by_reason"] == {r: sum(e["reason"] == r for e in ledger) for r in {e["reason"] for e in ledger}}
    for before, after in zip(stats["stages"], stats["stages"][1:]):
        assert before["out"] == after["in"]
    for stage in stats["stages"]:
        assert stage["in"] == stage.get("used", stage["out"]) + stage["dropped"]


def test_every_line_is_kept_or_ledgered_with_a_reason(tmp_path):
    rows = [
        hh("What is 1 + 1?", "2", "3"),
        hh("What is 1 + 1?", "2", "3"),  # duplicate
        hh("What is 2 + 2?", "4", "4"),  # identical
        hh("What is 3 + 3?", "", "5"),  # empty
        {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"},  # mismatch
        hh("Q" * 50, "a" * 60, "b"),  # too long for max_chars 100
        hh("What is 1 + 1 ?", "2", "3"),  # kept: whitespace differs inside the prompt, not only around it
    ]
    raw = write_rows(tmp_path / "raw.jsonl", rows)
    kept, ledger, stats = run(tmp_path, raw, FilterSettings(max_chars=100))
    assert [r["id"] for r in kept] == ["t/train/000001", "t/train/000007"]
    assert [(e["line"], e["reason"]) for e in ledger] == [
        (2, "duplicate"), (3, "identical"), (4, "empty"), (5, "prompt_mismatch"), (6, "too_long")]
    assert all(e["file"] == str(raw) and e["source"] == "t" and e["detail"] and e["id"] for e in ledger)
    assert ledger[0]["detail"] == "same content as t/train/000001"
    assert_reconciles(stats, kept, ledger)
    assert [s["stage"] for s in stats["stages"]] == ["read", "adapt", "filter"]
    assert stats["stages"][1]["dropped_by_reason"] == {"prompt_mismatch": 1}


def test_each_filter_can_be_switched_off(tmp_path):
    rows = [hh("q", "a", "a"), hh("q2", "", "b"), hh("q" * 50, "x", "y"), hh("q", "a", "a")]
    raw = write_rows(tmp_path / "raw.jsonl", rows)
    kept, ledger, _ = run(tmp_path, raw, FilterSettings(drop_empty=False, drop_identical=False, max_chars=0,
                                                        dedup=False))
    assert len(kept) == 4 and not ledger


def test_shp_score_ratio_filter(tmp_path):
    raw = write_rows(tmp_path / "shp.jsonl", [shp("Q?", "a", "b", 10, 4), shp("R?", "a", "b", 10, 6)])
    kept, ledger, _ = run(tmp_path, raw, format="shp")
    assert len(kept) == 1 and ledger[0]["reason"] == "low_score_ratio" and "1.67 < min_score_ratio 2" in \
        ledger[0]["detail"]
    kept, ledger, _ = run(tmp_path, raw, FilterSettings(min_score_ratio=0), format="shp")
    assert len(kept) == 2 and not ledger


@pytest.mark.parametrize("name", ["raw.jsonl", "raw.jsonl.gz", "raw.json", "raw.json.gz", "raw.parquet",
                                  "raw.parquet.gz", "raw.ndjson"])
def test_file_formats_and_gzip_give_the_same_records(tmp_path, name):
    rows = [ultrafeedback(f"Question {i}?", f"good {i}", f"bad {i}") for i in range(5)]
    kept, ledger, stats = run(tmp_path, write_rows(tmp_path / name, rows), format="ultrafeedback")
    assert [r["chosen"][0]["content"] for r in kept] == [f"good {i}" for i in range(5)]
    unit = "line" if name in ("raw.jsonl", "raw.jsonl.gz", "raw.ndjson") else "row"
    assert kept[0]["meta"][unit] == 1
    assert stats["file"] == str(tmp_path / name)


def test_a_json_file_holding_json_lines_is_read_as_lines(tmp_path):
    raw = write_rows(tmp_path / "train.json", [hh("a?", "x", "y"), hh("b?", "x", "y")], fmt="jsonl")
    kept, _, _ = run(tmp_path, raw)
    assert len(kept) == 2 and kept[1]["meta"]["line"] == 2


BAD_LINES = [
    (b'{"chosen": "x"\n', "invalid JSON", None),
    (b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\xff\xfe"}\n', "not valid UTF-8", None),
    (b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\\ud800"}\n', "invalid JSON", None),
    (b'{"chosen": NaN, "rejected": "x"}\n', "invalid JSON", None),
    (b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b"}\n', "missing", "rejected"),
    (b'{"chosen": 1, "rejected": "x"}\n', "expected a string, got int", "chosen"),
    (b'[1, 2]\n', "expected a JSON object, got list", "<row>"),
]


@pytest.mark.parametrize("raw, problem, key", BAD_LINES)
def test_bad_lines_stop_with_file_line_and_key_or_go_to_quarantine(tmp_path, raw, problem, key):
    good = json.dumps(hh("What is 1 + 1?", "2", "3")).encode() + b"\n"
    path = tmp_path / "raw.jsonl"
    path.write_bytes(good + raw + good.replace(b"1 + 1", b"2 + 2"))
    with pytest.raises(RecordError) as info:
        run(tmp_path, path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: ") and problem in message and "on_bad_record: quarantine" in message
    if key:
        assert f"key '{key}'" in message
    kept, ledger, stats = run(tmp_path, path, on_bad_record="quarantine")
    assert len(kept) == 2 and len(ledger) == 1
    assert ledger[0]["reason"] == "malformed" and ledger[0]["line"] == 2 and problem in ledger[0]["detail"]
    assert ledger[0]["stage"] == ("adapt" if key else "read")
    assert stats["in"] == 3
    assert_reconciles(stats, kept, ledger)


def test_parquet_rows_with_missing_or_wrongly_typed_columns(tmp_path):
    rows = [{"prompt": "Q1", "chosen": "a", "rejected": "b"}, {"prompt": "Q2", "chosen": "a", "rejected": None},
            {"prompt": "Q3", "chosen": "a", "rejected": "c"}]
    path = write_rows(tmp_path / "raw.parquet", rows)
    with pytest.raises(RecordError, match=rf"{path}:2: key 'rejected': expected a string or a list, got null"):
        run(tmp_path, path, format="pairs")
    kept, ledger, stats = run(tmp_path, path, format="pairs", on_bad_record="quarantine")
    assert len(kept) == 2 and ledger[0]["row"] == 2 and "line" not in ledger[0]
    other = write_rows(tmp_path / "other.parquet", [{"prompt": "Q", "chosen": "a"}])
    with pytest.raises(RecordError, match=rf"{other}:1: key 'rejected': missing"):
        run(tmp_path, other, format="pairs")


@pytest.mark.parametrize("name, content, problem", [
    ("raw.json", b'[{"prompt": "Q", "chosen": "a", "rejected": "b"},\n {"prompt": oops}]', r"raw.json:2: invalid JSON"),
    ("raw.json", b'[{"prompt": "Q",\n "chosen": "\xff", "rejected": "b"}]', r"raw.json:2: not valid UTF-8"),
    ("raw.json", b'{"prompt": "Q", "chosen": "a", "rejected": "b", "x": [1,\n2]}', "expected a JSON array"),
    ("raw.parquet", b"PAR1 this is no parquet file", "not a readable Parquet file"),
    ("raw.jsonl.gz", gzip.compress(b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n' * 50)[:-20],
     r"raw.jsonl.gz:\d+: not a readable gzip stream"),
    ("raw.csv", b"prompt,chosen,rejected\n", "cannot tell the file type"),
])
def test_unreadable_files_are_errors_even_in_quarantine(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    for mode in ("error", "quarantine"):
        with pytest.raises(RecordError, match=problem):
            run(tmp_path, path, format="pairs", on_bad_record=mode)


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json", "empty.parquet", "blank.jsonl"])
def test_empty_files_are_an_error(tmp_path, name):
    path = tmp_path / name
    if name == "empty.parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), path)
    else:
        path.write_text({"empty.jsonl": "", "empty.json": "[]", "blank.jsonl": "\n  \n"}[name])
    with pytest.raises(RecordError, match="no records"):
        run(tmp_path, path, format="pairs", on_bad_record="quarantine")


def test_a_ten_megabyte_line_is_handled(tmp_path):
    path = write_rows(tmp_path / "raw.jsonl", [hh("What is 1 + 1?", "x" * 10_000_000, "3"), hh("What is 2 + 2?", "4", "5")])
    kept, ledger, _ = run(tmp_path, path)
    assert len(kept) == 1 and ledger[0]["reason"] == "too_long" and ledger[0]["line"] == 1
    kept, ledger, _ = run(tmp_path, path, FilterSettings(max_chars=0))
    assert len(kept[0]["chosen"][0]["content"]) == 10_000_000


@pytest.mark.parametrize("tail, problem", [(b'"}\n', "invalid JSON"), (b'\xff"}\n', "not valid UTF-8")])
def test_a_broken_ten_megabyte_line_is_named_or_quarantined_in_one_short_line(tmp_path, tail, problem):
    good = json.dumps(hh("What is 1 + 1?", "2", "3")).encode() + b"\n"
    broken = b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: ' + b"x" * 10_000_000 + b'", "rejected": "' + tail
    if problem == "invalid JSON":
        broken = broken.replace(b', "rejected"', b' "rejected"')  # the missing comma is 10 MB into the line
    path = tmp_path / "raw.jsonl"
    path.write_bytes(good + broken + good.replace(b"1 + 1", b"2 + 2"))
    with pytest.raises(RecordError) as info:
        run(tmp_path, path)
    assert str(info.value).startswith(f"{path}:2: {problem}") and len(str(info.value)) < 300
    kept, ledger, stats = run(tmp_path, path, on_bad_record="quarantine")
    assert len(kept) == 2 and [(e["line"], e["reason"]) for e in ledger] == [(2, "malformed")]
    assert problem in ledger[0]["detail"] and len(ledger[0]["detail"]) < 300
    assert_reconciles(stats, kept, ledger)


def test_max_records_reads_only_the_first_rows(tmp_path):
    path = tmp_path / "raw.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(5):
            handle.write(json.dumps(hh(f"What is {i} + 1?", str(i + 1), "0")) + "\n")
    kept, _, stats = run(tmp_path, path, max_records=3)
    assert len(kept) == 3 and stats["in"] == stats["rows"] == 3


def test_token_filter_counts_chatml_bytes_by_default(tmp_path):
    path = write_rows(tmp_path / "raw.jsonl", [hh("Q?", "a" * 10, "b"), hh("R?", "a" * 100, "b")])
    kept, ledger, stats = run(tmp_path, path, FilterSettings(max_tokens=100))
    # prompt "R?" + "<|im_start|>user\n" + "<|im_end|>\n" = 2 + 28 bytes; the longer reply 100 + 33
    assert len(kept) == 1 and ledger[0]["reason"] == "too_many_tokens"
    assert ledger[0]["detail"] == "163 tokens (ChatML bytes) > max_tokens 100"
    assert stats["lengths"]["tokens"]["unit"] == "ChatML bytes"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A small word-level tokenizer with a ChatML template, saved as transformers saves one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from prefalign.train.base_model import CHATML_TEMPLATE

    vocab = {w: i for i, w in enumerate(["<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant", "hello",
                                         "world", "\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHATML_TEMPLATE
    folder = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(folder)
    return folder


def test_token_filter_with_a_tokenizer_folder(tmp_path, tokenizer_dir):
    from prefalign.data.token_count import make_counter

    counter = make_counter(str(tokenizer_dir))
    overhead = counter.overhead("user")
    assert overhead >= 2  # <|im_start|>, user, <|im_end|> at least
    path = write_rows(tmp_path / "raw.jsonl", [hh("hello", "world", "hello"), hh("hello hello hello", "world " * 9,
                                                                                 "x")])
    kept, ledger, stats = run(tmp_path, path, FilterSettings(max_tokens=12, tokenizer=str(tokenizer_dir)))
    assert len(kept) == 1 and ledger[0]["reason"] == "too_many_tokens"
    assert f"tokens ({tokenizer_dir.name} tokens) > max_tokens 12" in ledger[0]["detail"]


def test_a_hub_tokenizer_must_be_pinned(tmp_path):
    path = write_rows(tmp_path / "raw.jsonl", [hh("q", "a", "b")])
    with pytest.raises(ConfigError, match="tokenizer_revision: expected a 40-hex-digit commit"):
        run(tmp_path, path, FilterSettings(max_tokens=10, tokenizer="someone/model", tokenizer_revision="main"))


def test_oasst_trees_normalize_with_language_filter_and_row_accounting(tmp_path):
    rows = oasst_tree() + [
        oasst_message("g", None, "prompter", "Wie spät ist es?", lang="de", tree="t2"),
        oasst_message("g0", "g", "assistant", "Zehn Uhr.", rank=0, lang="de", tree="t2"),
        oasst_message("g1", "g", "assistant", "Keine Ahnung.", rank=1, lang="de", tree="t2"),
        {"message_id": "broken"},
    ]
    path = write_rows(tmp_path / "oasst.jsonl", rows)
    kept, ledger, stats = run(tmp_path, path, format="oasst1", languages=["en"], on_bad_record="quarantine")
    assert [r["rejected"][0]["content"] for r in kept] == ["Lyon, I think.", "France has no capital.", "Barcelona."]
    reasons = sorted(e["reason"] for e in ledger)
    assert reasons == ["language", "malformed", "not_in_pair"]
    assert stats["rows"] == 12
    adapt = stats["stages"][1]
    assert adapt["in"] == 12 and adapt["out"] == 4 and adapt["used"] == 10  # 10 rows made 4 pairs
    assert stats["in"] == 12 - 10 + 4 == stats["kept"] + stats["dropped"]
    assert_reconciles(stats, kept, ledger)


def test_cli_writes_records_ledger_and_stats(tmp_path):
    path = write_rows(tmp_path / "raw.jsonl", [hh("What is 1 + 1?", "2", "3"), hh("What is 1 + 1?", "2", "3")])
    out = tmp_path / "out"
    run_cli("normalize", "--input", path, "--records", out / "n.jsonl", "--rejects", out / "r.jsonl",
            "--stats", out / "s.json", "--name", "t")
    assert len(read_jsonl(out / "n.jsonl")) == 1
    assert read_jsonl(out / "r.jsonl")[0]["reason"] == "duplicate"
    stats = json.loads((out / "s.json").read_text())
    assert stats["in"] == 2 and stats["kept"] == 1


def test_cli_pairs_with_configured_fields(tmp_path):
    path = write_rows(tmp_path / "raw.json", [{"q": "Q", "good": "a", "bad": "b", "uid": "x1"}])
    out = tmp_path / "out"
    run_cli("normalize", "--input", path, "--format", "pairs", "--prompt-field", "q", "--chosen-field", "good",
            "--rejected-field", "bad", "--id-field", "uid", "--records", out / "n.jsonl", "--rejects", out / "r.jsonl",
            "--stats", out / "s.json", "--name", "mine")
    (record,) = read_jsonl(out / "n.jsonl")
    assert record["meta"] == {"file": str(path), "row": 1, "source_id": "x1"}


def test_cli_error_is_one_clear_line_not_a_traceback(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"chosen": "x", "rejected": 5}\n')
    outputs = ["--records", tmp_path / "n.jsonl", "--rejects", tmp_path / "r.jsonl", "--stats", tmp_path / "s.json"]
    result = run_cli("normalize", "--input", path, *outputs, check=False)
    assert result.returncode == 3  # an input error (a config error exits 2)
    assert "Traceback" not in result.stderr and "input error" in result.stderr
    assert list(tmp_path.iterdir()) == [path]  # a failed step leaves no half-written output
    assert f"{path}:1: key 'chosen'" in result.stderr
    result = run_cli("normalize", *outputs, check=False)
    assert result.returncode == 2 and "expected a raw file (--input) or a hub dataset (--hub-id)" in result.stderr
    result = run_cli("normalize", "--input", path, "--hub-id", "a/b", "--revision", "0" * 40, *outputs, check=False)
    assert result.returncode == 2 and "not both" in result.stderr


# ---------------------------------------------------------------- any bytes: kept, ledgered or a named error

LINE = st.one_of(
    st.builds(lambda r: json.dumps(r).encode(), st.builds(hh, st.text(max_size=12), st.text(max_size=12),
                                                           st.text(max_size=12))),
    st.binary(max_size=40),
    st.builds(lambda r: json.dumps(r).encode(), st.dictionaries(st.sampled_from(["chosen", "rejected", "x"]),
                                                                st.one_of(st.text(max_size=8), st.integers()))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=12))
@example(lines=[b"version https://git-lfs"])  # data that starts like an LFS pointer is data (CI, 2026-11-29)
def test_any_file_reconciles_or_fails_with_a_named_error(tmp_path_factory, lines):
    tmp_path = tmp_path_factory.mktemp("prop")
    path = tmp_path / "raw.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    try:
        kept, ledger, stats = run(tmp_path, path, on_bad_record="quarantine")
    except RecordError as exc:
        assert "no records" in str(exc)
        return
    assert_reconciles(stats, kept, ledger)
    assert stats["rows"] == sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
    try:
        run(tmp_path, path)
    except RecordError as exc:
        assert str(exc).startswith(f"{path}:")
