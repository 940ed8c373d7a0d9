import pytest

from prefalign.adapters import ADAPTERS, BadRecord, Rejected, Where
from prefalign.adapters.hh_rlhf import split_transcript

WHERE = Where("ds", "raw.jsonl", 7)


def test_hh_rlhf_multi_turn_prompt_and_final_replies():
    row = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2 + 3?\n\nAssistant: 5",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2 + 3?\n\nAssistant: 7",
    }
    record = ADAPTERS["hh-rlhf"](row, WHERE)
    assert record["id"] == "ds/train/000007"
    assert record["source"] == "ds"
    assert record["prompt"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2 + 3?"},
    ]
    assert record["chosen"] == [{"role": "assistant", "content": "5"}]
    assert record["rejected"] == [{"role": "assistant", "content": "7"}]
    assert record["meta"] == {"file": "raw.jsonl", "line": 7, "turns": 4}


def test_hh_rlhf_keeps_newlines_inside_a_turn_and_empty_final_reply():
    turns = split_transcript("\n\nHuman: line one\nline two\n\nAssistant:", "chosen")
    assert turns == [{"role": "user", "content": "line one\nline two"}, {"role": "assistant", "content": ""}]


def test_hh_rlhf_prompt_mismatch_is_rejected_with_reason():
    row = {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"}
    with pytest.raises(Rejected) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.reason == "prompt_mismatch"


def test_hh_rlhf_transcript_ending_with_human_is_rejected():
    row = {"chosen": "\n\nHuman: A\n\nAssistant: x\n\nHuman: more?", "rejected": "\n\nHuman: A\n\nAssistant: y"}
    with pytest.raises(Rejected) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.reason == "no_final_assistant_turn"


@pytest.mark.parametrize(
    "row, key",
    [
        ({"rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ({"chosen": 3, "rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ({"chosen": "no markers", "rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ([1, 2], "<row>"),
    ],
)
def test_hh_rlhf_malformed_rows_name_the_key(row, key):
    with pytest.raises(BadRecord) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.key == key


def test_shp_follows_the_label_and_keeps_the_ratio():
    row = {"history": "Q?", "human_ref_A": "a", "human_ref_B": "b", "labels": 0, "score_A": 3, "score_B": 12,
           "score_ratio": 4.0, "post_id": "p1", "domain": "d"}
    record = ADAPTERS["shp"](row, WHERE)
    assert record["chosen"][0]["content"] == "b" and record["rejected"][0]["content"] == "a"
    assert record["prompt"] == [{"role": "user", "content": "Q?"}]
    assert record["meta"]["score_ratio"] == 4.0
    assert record["meta"]["score_chosen"] == 12


def test_shp_computes_a_missing_ratio_and_checks_types():
    row = {"history": "Q?", "human_ref_A": "a", "human_ref_B": "b", "labels": 1, "score_A": 9, "score_B": 3}
    assert ADAPTERS["shp"](row, WHERE)["meta"]["score_ratio"] == 3.0
    with pytest.raises(BadRecord, match="labels"):
        ADAPTERS["shp"]({**row, "labels": 2}, WHERE)
    with pytest.raises(BadRecord, match="score_A"):
        ADAPTERS["shp"]({**row, "score_A": "9"}, WHERE)
    with pytest.raises(BadRecord, match="labels"):
        ADAPTERS["shp"]({**row, "labels": True}, WHERE)


def test_pairs_accept_strings_and_message_lists():
    record = ADAPTERS["pairs"]({"prompt": "Q", "chosen": "a", "rejected": "b"}, WHERE)
    assert record["prompt"] == [{"role": "user", "content": "Q"}]
    messages = {
        "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Q"}],
        "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}],
    }
    record = ADAPTERS["pairs"](messages, WHERE)
    assert len(record["prompt"]) == 2 and record["chosen"][0]["content"] == "a"
    with pytest.raises(BadRecord, match=r"prompt\[0\].role"):
        ADAPTERS["pairs"]({**messages, "prompt": [{"role": "robot", "content": "x"}]}, WHERE)
    with pytest.raises(BadRecord, match="chosen"):
        ADAPTERS["pairs"]({**messages, "chosen": [{"role": "user", "content": "x"}]}, WHERE)
