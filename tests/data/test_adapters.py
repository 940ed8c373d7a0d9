"""Adapters, one raw format each: faithful records, named keys for bad rows, reasons for rejects."""

import pytest
from data_fixtures import hh, oasst_message, oasst_tree, shp, ultrafeedback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefalign.data.adapters import ADAPTERS, BadRecord, PairFields, Rejected, Where, oasst1
from prefalign.data.adapters.hh_rlhf import split_transcript
from prefalign.data.adapters.pairs import adapt as adapt_pairs
from prefalign.records import ROLES

WHERE = Where("ds", "raw.jsonl", 7)


# ---------------------------------------------------------------- hh-rlhf

def test_hh_rlhf_multi_turn_prompt_and_final_replies():
    row = hh("What is 2 + 3?", "5", "7", history=(("Hi", "Hello!"),))
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
    row = {"chosen": "\n\nHuman: A\n\nAssistant: x\n\nHuman: more?",
           "rejected": "\n\nHuman: A\n\nAssistant: x\n\nHuman: why?"}
    with pytest.raises(Rejected) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.reason == "no_final_assistant_turn"


@pytest.mark.parametrize("chosen_reply, which", [
    ("Sure. Human: is it safe?\n\nAssistant: Yes.", "chosen (1 turn(s)"),  # inline fake turn, then a real marker
    ("Sure.\n\nHuman: more?", "chosen (1 turn(s)"),  # the reply goes on with a turn of the human's
    ("Sure.\n\nHuman: more?\n\nAssistant: Fine.", "chosen (2 turn(s)"),
])
def test_hh_rlhf_a_reply_holding_turn_markers_is_not_a_prompt_mismatch(chosen_reply, which):
    """Issue 13, item 7: the prompts are identical; the reply holds turns of its own."""
    row = hh("Can you help me?", chosen_reply, "No.", history=(("Hi", "Hello!"),))
    with pytest.raises(Rejected) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.reason == "embedded_turn_marker" and which in info.value.detail


def test_hh_rlhf_stripped_whitespace_is_noted_in_meta():
    """Issue 13, item 7: turns were stripped without a word."""
    row = {"chosen": "\n\nHuman: Hi  \n\nAssistant: Hello! ", "rejected": "\n\nHuman: Hi  \n\nAssistant: Go."}
    record = ADAPTERS["hh-rlhf"](row, WHERE)
    assert record["prompt"][0]["content"] == "Hi" and record["chosen"][0]["content"] == "Hello!"
    assert record["meta"]["whitespace_stripped"] == 3  # "Hi  " twice, "Hello! " once
    assert "whitespace_stripped" not in ADAPTERS["hh-rlhf"](hh("Hi", "Hello!", "Go."), WHERE)["meta"]


def test_hh_rlhf_without_a_human_turn_is_rejected():
    row = {"chosen": "\n\nAssistant: x", "rejected": "\n\nAssistant: y"}
    with pytest.raises(Rejected) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.reason == "no_prompt"


@pytest.mark.parametrize(
    "row, key",
    [
        ({"rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ({"chosen": 3, "rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ({"chosen": "no markers", "rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ({"chosen": "preamble\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: A\n\nAssistant: y"}, "chosen"),
        ({"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": None}, "rejected"),
        ([1, 2], "<row>"),
        ("a string", "<row>"),
    ],
)
def test_hh_rlhf_malformed_rows_name_the_key(row, key):
    with pytest.raises(BadRecord) as info:
        ADAPTERS["hh-rlhf"](row, WHERE)
    assert info.value.key == key


# ---------------------------------------------------------------- SHP

def test_shp_follows_the_label_and_keeps_the_ratio():
    row = shp("Q?", "a", "b", 3, 12)
    record = ADAPTERS["shp"](row, WHERE)
    assert record["chosen"][0]["content"] == "b" and record["rejected"][0]["content"] == "a"
    assert record["prompt"] == [{"role": "user", "content": "Q?"}]
    assert record["meta"]["score_ratio"] == 4.0
    assert record["meta"]["score_chosen"] == 12 and record["meta"]["score_rejected"] == 3
    assert record["meta"]["post_id"] == "p1" and record["meta"]["domain"] == "askscience_train"


def test_shp_computes_a_missing_ratio_and_checks_types():
    row = {"history": "Q?", "human_ref_A": "a", "human_ref_B": "b", "labels": 1, "score_A": 9, "score_B": 3}
    assert ADAPTERS["shp"](row, WHERE)["meta"]["score_ratio"] == 3.0
    assert ADAPTERS["shp"]({**row, "score_B": 0}, WHERE)["meta"]["score_ratio"] is None  # unbounded
    with pytest.raises(BadRecord, match="labels"):
        ADAPTERS["shp"]({**row, "labels": 2}, WHERE)
    with pytest.raises(BadRecord, match="score_A"):
        ADAPTERS["shp"]({**row, "score_A": "9"}, WHERE)
    with pytest.raises(BadRecord, match="labels"):
        ADAPTERS["shp"]({**row, "labels": True}, WHERE)
    with pytest.raises(BadRecord, match="score_ratio"):
        ADAPTERS["shp"]({**row, "score_ratio": "high"}, WHERE)


# ---------------------------------------------------------------- UltraFeedback

def test_ultrafeedback_message_lists_share_the_prompt():
    record = ADAPTERS["ultrafeedback"](ultrafeedback("Explain DNS.", "It maps names.", "Dunno.", 9.0, 3.5), WHERE)
    assert record["prompt"] == [{"role": "user", "content": "Explain DNS."}]
    assert record["chosen"][0]["content"] == "It maps names."
    assert record["rejected"][0]["content"] == "Dunno."
    assert record["meta"]["score_chosen"] == 9.0 and record["meta"]["prompt_id"]


def test_ultrafeedback_rejects_ties_mismatches_and_bad_messages():
    row = ultrafeedback("Q", "a", "b")
    with pytest.raises(Rejected) as info:
        ADAPTERS["ultrafeedback"]({**row, "score_rejected": 8.0}, WHERE)
    assert info.value.reason == "tied_scores"
    other = ultrafeedback("Another question", "a", "b")
    with pytest.raises(Rejected) as info:
        ADAPTERS["ultrafeedback"]({**row, "rejected": other["rejected"]}, WHERE)
    assert info.value.reason == "prompt_mismatch"
    with pytest.raises(BadRecord, match=r"chosen\[1\].content"):
        ADAPTERS["ultrafeedback"]({**row, "chosen": [row["chosen"][0], {"role": "assistant", "content": 5}]}, WHERE)
    with pytest.raises(BadRecord, match="chosen: expected a list"):
        ADAPTERS["ultrafeedback"]({**row, "chosen": "a"}, WHERE)


def test_ultrafeedback_reply_only_lists_take_the_prompt_string():
    row = {"prompt": "Q?", "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}], "score_chosen": 7, "score_rejected": 2}
    assert ADAPTERS["ultrafeedback"](row, WHERE)["prompt"] == [{"role": "user", "content": "Q?"}]


# ---------------------------------------------------------------- generic pairs

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
    with pytest.raises(Rejected, match="no_final_assistant_turn"):
        ADAPTERS["pairs"]({**messages, "chosen": [{"role": "user", "content": "x"}]}, WHERE)
    with pytest.raises(Rejected, match="prompt_mismatch"):
        ADAPTERS["pairs"]({**messages, "chosen": [{"role": "user", "content": "other"},
                                                  {"role": "assistant", "content": "a"}]}, WHERE)
    with pytest.raises(BadRecord, match="prompt: expected a string or a non-empty list of messages, got an empty list"):
        ADAPTERS["pairs"]({**messages, "prompt": []}, WHERE)


def test_pairs_field_names_and_source_id_are_configurable():
    fields = PairFields(prompt="question", chosen="good", rejected="bad", id="uid")
    record = adapt_pairs({"question": "Q", "good": "a", "bad": "b", "uid": 42}, WHERE, fields)
    assert record["chosen"][0]["content"] == "a" and record["meta"]["source_id"] == 42
    assert record["id"] == "ds/train/000007"  # positional, unique whatever the source's ids
    with pytest.raises(BadRecord) as info:
        adapt_pairs({"question": "Q", "good": "a", "rejected": "b"}, WHERE, fields)
    assert info.value.key == "bad" and info.value.problem == "missing"


def test_pairs_implicit_prompt_from_whole_conversations():
    fields = PairFields(prompt=None)
    user = {"role": "user", "content": "Q"}
    row = {"chosen": [user, {"role": "assistant", "content": "a"}],
           "rejected": [user, {"role": "assistant", "content": "b"}]}
    assert adapt_pairs(row, WHERE, fields)["prompt"] == [user]
    with pytest.raises(Rejected, match="prompt_mismatch"):
        adapt_pairs({**row, "rejected": [{"role": "user", "content": "R"}, {"role": "assistant", "content": "b"}]},
                    WHERE, fields)
    with pytest.raises(BadRecord, match="message lists holding the prompt"):
        adapt_pairs({**row, "rejected": "b"}, WHERE, fields)


# ---------------------------------------------------------------- oasst1

def build(rows, pairing="best_vs_rest"):
    parsed = [oasst1.parse(row, Where("oa", "oasst.jsonl", i + 1)) for i, row in enumerate(rows)]
    trees = oasst1.build_pairs(parsed, pairing)
    return trees.pairs, trees.drops


def test_oasst_ranked_siblings_become_pairs_with_the_conversation_as_prompt():
    pairs, drops = build(oasst_tree())
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("Paris.", "Lyon, I think."), ("Paris.", "France has no capital."), ("Madrid.", "Barcelona.")]
    assert pairs[2]["prompt"] == [{"role": "user", "content": "What is the capital of France?"},
                                  {"role": "assistant", "content": "Paris."},
                                  {"role": "user", "content": "And of Spain?"}]
    assert pairs[0]["meta"]["lang"] == "en" and pairs[0]["meta"]["rejected_rank"] == 1
    assert pairs[0]["meta"]["line"] == 3  # the rejected reply's row
    assert [(d.id, d.reason) for d in drops] == [("ax", "not_in_pair")]
    assert len({p["id"] for p in pairs}) == 3


def test_oasst_all_pairing_orders_every_ranked_pair():
    pairs, _ = build(oasst_tree(), pairing="all")
    assert len(pairs) == 3 + 1  # 3 choose 2 under the root, 1 under the follow-up
    assert all(p["meta"]["chosen_rank"] < p["meta"]["rejected_rank"] for p in pairs)


def test_oasst_every_row_is_used_or_ledgered():
    rows = oasst_tree() + [
        oasst_message("d", "r", "assistant", "deleted reply", rank=3, deleted=True),
        oasst_message("d1", "d", "prompter", "below a deleted reply"),
        oasst_message("o", "missing", "assistant", "orphan", rank=0),
        oasst_message("bad", "r", "assistant", "failed review", rank=4, review_result=False),
        oasst_message("a1", "r", "assistant", "same id again", rank=5),
        oasst_message("lone", None, "prompter", "Nobody answered this."),
    ]
    pairs, drops = build(rows)
    reasons = {d.id: d.reason for d in drops}
    assert reasons == {"ax": "not_in_pair", "d": "deleted", "d1": "orphan", "o": "orphan", "bad": "failed_review",
                       "a1": "duplicate_message_id", "lone": "not_in_pair"}
    used = {m for p in pairs for m in (p["meta"]["chosen_id"], p["meta"]["rejected_id"], p["meta"]["parent_id"])}
    assert used | set(reasons) | {"r"} == {r["message_id"] for r in rows}


def test_oasst_parent_loops_do_not_hang():
    rows = [oasst_message("x", "y", "prompter", "x"), oasst_message("y", "x", "assistant", "y", rank=0)]
    pairs, drops = build(rows)
    assert not pairs and {d.reason for d in drops} == {"orphan"}


@pytest.mark.parametrize("change, key", [
    ({"role": "moderator"}, "role"), ({"text": None}, "text"), ({"rank": -1}, "rank"), ({"rank": 1.5}, "rank"),
    ({"deleted": "no"}, "deleted"), ({"message_id": 7}, "message_id"),
])
def test_oasst_malformed_messages_name_the_key(change, key):
    with pytest.raises(BadRecord) as info:
        oasst1.parse({**oasst_message("m", None, "prompter", "hi"), **change}, WHERE)
    assert info.value.key == key


# ---------------------------------------------------------------- any input: a record, a reject or a named error

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "bot", 3]),
                                 "content": st.one_of(st.text(max_size=20), st.integers())})
FIELD = st.one_of(st.text(max_size=30), st.lists(MESSAGE, max_size=3), JSON)
TRANSCRIPT = st.lists(st.tuples(st.sampled_from(["Human", "Assistant", "Robot"]), st.text(max_size=15)),
                      max_size=4).map(lambda turns: "".join(f"\n\n{r}: {t}" for r, t in turns))
ROWS = {
    "hh-rlhf": st.fixed_dictionaries({"chosen": st.one_of(TRANSCRIPT, JSON), "rejected": st.one_of(TRANSCRIPT, JSON)}),
    "shp": st.fixed_dictionaries({k: v for k, v in {
        "history": st.one_of(st.text(max_size=20), JSON), "human_ref_A": st.text(max_size=10),
        "human_ref_B": st.one_of(st.text(max_size=10), JSON), "labels": st.one_of(st.integers(-1, 2), JSON),
        "score_A": st.one_of(st.integers(0, 50), st.floats(allow_nan=True), JSON),
        "score_B": st.one_of(st.integers(0, 50), JSON)}.items()}),
    "ultrafeedback": st.fixed_dictionaries({"prompt": FIELD, "chosen": FIELD, "rejected": FIELD,
                                            "score_chosen": JSON, "score_rejected": JSON}),
    "pairs": st.fixed_dictionaries({"prompt": FIELD, "chosen": FIELD, "rejected": FIELD}),
}


def assert_canonical(record: dict) -> None:
    assert set(record) == {"id", "source", "prompt", "chosen", "rejected", "meta"}
    for key in ("prompt", "chosen", "rejected"):
        assert record[key] and all(m["role"] in ROLES and isinstance(m["content"], str) for m in record[key])
    assert [m["role"] for m in record["chosen"] + record["rejected"]] == ["assistant", "assistant"]


@pytest.mark.parametrize("fmt", sorted(ROWS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_row_gives_a_record_a_reject_or_a_named_bad_record(fmt, data):
    row = data.draw(st.one_of(ROWS[fmt], JSON))
    try:
        assert_canonical(ADAPTERS[fmt](row, WHERE))
    except BadRecord as exc:
        assert exc.key and exc.problem
    except Rejected as exc:
        assert exc.reason.replace("_", "").isalpha()


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({
    "message_id": st.sampled_from(list("abcdef")), "parent_id": st.one_of(st.none(), st.sampled_from(list("abcdefg"))),
    "role": st.sampled_from(["prompter", "assistant"]), "text": st.text(max_size=8),
    "rank": st.one_of(st.none(), st.integers(0, 3)), "deleted": st.booleans()}), max_size=12))
def test_any_message_forest_accounts_for_every_row(rows):
    parsed = [oasst1.parse(row, Where("oa", "f", i + 1)) for i, row in enumerate(rows)]
    trees = oasst1.build_pairs(parsed)
    pairs, dropped = trees.pairs, [d.where.line for d in trees.drops]
    first = {}  # message id -> (line, parent id) of its first row
    for i, row in enumerate(rows, 1):
        first.setdefault(row["message_id"], (i, row["parent_id"]))
    used = set()
    for p in pairs:
        assert_canonical(p)
        used |= {first[p["meta"]["chosen_id"]][0], first[p["meta"]["rejected_id"]][0]}
        node = p["meta"]["parent_id"]
        while node is not None:  # the prompt: the parent and its ancestors
            used.add(first[node][0])
            node = first[node][1]
    assert len(dropped) == len(set(dropped))
    assert not used & set(dropped)
    assert used | set(dropped) == set(range(1, len(rows) + 1))
    assert trees.used_rows == len(used)
