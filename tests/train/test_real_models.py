"""Real models: a pretrained model loaded from a local folder or a hub id at a pinned commit goes
through build-base -> SFT -> DPO -> evaluation, whether its tokenizer has a chat template or not.

The models are the tests' own (tests/tiny_models.py: Llama- and Qwen2-shaped, random weights),
saved in the hub's layout; the hub id is served from a hub cache laid out as huggingface_hub
writes it, offline.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import read_jsonl, run_cli
from tiny_models import hub_snapshot, llama_style, qwen2_style

from prefalign.jsonl import write_jsonl
from prefalign.records import make_record, message

pytestmark = pytest.mark.slow

TRAIN = ["--max-steps", "3", "--batch-size", "4", "--logging-steps", "1", "--checkpoint-steps", "0",
         "--max-length", "256", "--threads", "1", "--use-lora", "--learning-rate", "0.001"]


def conversations(n: int, offset: int = 0) -> list[dict]:
    return [make_record(f"hh/train/{i:06d}", "hh",
                        [message("user", f"How do I fix a bike tyre, step {i}?"), message("assistant", "Which tyre?"),
                         message("user", "The front one, please.")],
                        f"Take the wheel off, find the hole and patch it. Step {i}.", "I don't know.")
            for i in range(offset, offset + n)]


def chain(tmp_path, name_or_path: str, *base_flags: str) -> dict:
    """build-base, sft, dpo and evaluate through the CLI; returns what the checks need."""
    write_jsonl(tmp_path / "train.jsonl", conversations(12))
    write_jsonl(tmp_path / "test.jsonl", conversations(4, offset=100))
    run_cli("build-base", "--source", "pretrained", "--name-or-path", name_or_path, *base_flags,
            "--out", tmp_path / "base", "--threads", "1")
    run_cli("sft", "--base", tmp_path / "base", "--train", tmp_path / "train.jsonl", "--out", tmp_path / "sft",
            "--metrics", tmp_path / "sft.json", "--log-history", tmp_path / "sft_log.jsonl", *TRAIN)
    run_cli("dpo", "--sft", tmp_path / "sft", "--train", tmp_path / "train.jsonl", "--out", tmp_path / "dpo",
            "--adapter-out", tmp_path / "adapter", "--metrics", tmp_path / "dpo.json",
            "--log-history", tmp_path / "dpo_log.jsonl", "--loss-type", "sigmoid", *TRAIN)
    run_cli("evaluate", "--name", "dpo", "--reference-name", "sft", "--model", tmp_path / "dpo", "--reference",
            tmp_path / "sft", "--test", tmp_path / "test.jsonl", "--metrics", tmp_path / "eval.json",
            "--generations", tmp_path / "generations.jsonl", "--pairs", tmp_path / "pairs.jsonl",
            "--max-new-tokens", "6", "--threads", "1", "--bootstrap-samples", "50", "--judge-prompts", "4",
            # no judge scores these conversations (the task verifier knows only task prompts, and `auto`
            # would need a reward model): the judge's metrics are unavailable, with the reason
            "--judge", "task")
    return {"base": json.loads((tmp_path / "base/prefalign_base.json").read_text()),
            "dpo": json.loads((tmp_path / "dpo.json").read_text()),
            "eval": json.loads((tmp_path / "eval.json").read_text()),
            "pairs": read_jsonl(tmp_path / "pairs.jsonl")}


def saved_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_a_llama_style_model_without_a_chat_template_gets_one_recorded(tmp_path):
    model = llama_style(tmp_path / "llama")
    out = chain(tmp_path, str(model))
    chat = out["base"]["chat"]
    assert chat["template"].startswith("prefalign: plain text") and chat["pad_source"] == "unk token"
    assert chat["end_of_turn"] == "</s>" and out["base"]["architecture"] == "LlamaForCausalLM"
    for step in ("base", "sft", "dpo"):  # every checkpoint carries the same template and tokens
        tokenizer = saved_tokenizer(tmp_path / step)
        assert tokenizer.chat_template and "### Assistant:" in tokenizer.chat_template
        assert (tokenizer.eos_token, tokenizer.pad_token) == ("</s>", "<unk>")
    assert math.isclose(out["dpo"]["train"]["first_loss"], math.log(2), abs_tol=1e-3)  # policy = reference
    assert out["eval"]["metrics"]["pairs"] == 4 and len(out["pairs"]) == 4
    assert all(math.isfinite(p["margin"]) and p["tokens_chosen"] > 0 for p in out["pairs"])


def test_a_qwen2_style_model_keeps_its_own_template_and_loads_from_the_hub_by_commit(tmp_path, monkeypatch):
    model = qwen2_style(tmp_path / "qwen")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revision = "d" * 40
    hub_snapshot(tmp_path / "hf/hub", "fakeorg/tiny-qwen2", revision, model)
    out = chain(tmp_path, "fakeorg/tiny-qwen2", "--revision", revision)
    chat = out["base"]["chat"]
    assert chat["template"] == "model" and chat["end_of_turn"] == "<|im_end|>" and chat["pad_token"] == "<|endoftext|>"
    assert out["base"]["settings"]["revision"] == revision
    tokenizer = saved_tokenizer(tmp_path / "dpo")
    assert "You are a helpful assistant." in tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert math.isclose(out["dpo"]["train"]["first_loss"], math.log(2), abs_tol=1e-3)
    assert out["eval"]["metrics"]["pairs"] == 4


def test_a_tokenizer_with_chatml_markers_but_no_template_gets_chatml_and_stops_at_im_end(tmp_path):
    from transformers import AutoModelForCausalLM

    from prefalign.train import chat

    folder = qwen2_style(tmp_path / "qwen-base")
    tokenizer = saved_tokenizer(folder)
    tokenizer.chat_template = None
    tokenizer.eos_token = "<|endoftext|>"  # a base model's tokenizer: eos is the end of text
    model = AutoModelForCausalLM.from_pretrained(folder)
    info = chat.prepare(tokenizer, model)
    assert info["template"].startswith("prefalign: ChatML") and info["end_of_turn"] == "<|im_end|>"
    assert tokenizer.eos_token == "<|im_end|>" and info["eos_was"] == "<|endoftext|>"
    im_end, end_of_text = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert model.generation_config.eos_token_id[0] == im_end and end_of_text in model.generation_config.eos_token_id


def test_a_hub_model_that_is_not_cached_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_cli("build-base", "--source", "pretrained", "--name-or-path", "fakeorg/absent", "--revision",
                     "e" * 40, "--out", tmp_path / "base", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "fakeorg/absent" in result.stderr and not (tmp_path / "base").exists()
