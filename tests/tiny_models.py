"""Small pretrained-model stand-ins the tests build and save locally, in the shapes of real ones.

    llama_style(folder)   LlamaForCausalLM + a Llama tokenizer (SentencePiece-style BPE over
                          "▁" with <unk>, <s>, </s>; bos added; no pad token; no chat template)
    qwen2_style(folder)   Qwen2ForCausalLM + a Qwen2 tokenizer (byte-level BPE with <|endoftext|>,
                          <|im_start|>, <|im_end|>; eos <|im_end|>, pad <|endoftext|>; its own
                          ChatML template with a default system turn, as Qwen2.5 instruct ships)
    hub_snapshot(cache, repo_id, revision, folder)
                          the folder laid out as huggingface_hub's cache after a download, so
                          `from_pretrained(repo_id, revision=...)` loads it offline

Weights are random (a few hundred thousand parameters): the tests check the path, not quality.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CORPUS = [
    "What is the capital of France? Paris is the capital of France.",
    "How do I boil an egg? Put it in boiling water for nine minutes.",
    "Tell me a joke. Why did the chicken cross the road? To get to the other side.",
    "Can you help me write a letter to my landlord about the broken heater?",
    "The quick brown fox jumps over the lazy dog, again and again.",
] * 20

QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)


def _bpe(pre_tokenizer, specials: list[str], vocab_size: int, initial_alphabet=()):
    from tokenizers import Tokenizer, models, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=list(initial_alphabet))
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    data = tokenizer.model.__getstate__()
    import json

    state = json.loads(data)
    return state["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]


def _save(model, tokenizer, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # safetensors
    tokenizer.save_pretrained(folder)
    return folder


def llama_style(folder: Path) -> Path:
    import torch
    from tokenizers import pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    vocab, merges = _bpe(pre_tokenizers.Metaspace(), ["<unk>", "<s>", "</s>"], 300,
                         initial_alphabet=[chr(c) for c in range(32, 127)] + ["▁"])
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges)
    assert tokenizer.chat_template is None and tokenizer.pad_token is None
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return _save(LlamaForCausalLM(config), tokenizer, folder)


def qwen2_style(folder: Path) -> Path:
    import torch
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    vocab, merges = _bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>", "<|im_start|>",
                                                                            "<|im_end|>"], 400,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = QWEN_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return _save(Qwen2ForCausalLM(config), tokenizer, folder)


def hub_snapshot(cache: Path, repo_id: str, revision: str, folder: Path) -> Path:
    """`folder`'s files as a hub cache's snapshot of model `repo_id` at `revision` (blobs + links)."""
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    for path in Path(folder).iterdir():
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot
