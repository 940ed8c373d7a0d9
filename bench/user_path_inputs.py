"""Inputs of the GPU user's path (bench/gpu_user_path.sh): an hh-rlhf file and a pretrained-shaped model.

    python bench/user_path_inputs.py data OUT.jsonl [--lengths data/hh_rlhf_lengths.json] [--rows 2312]
    python bench/user_path_inputs.py qwen2 FOLDER --corpus OUT.jsonl

`data`: rows in Anthropic/hh-rlhf's published shape ({"chosen", "rejected"} transcripts), with each
pair's prompt / chosen / rejected lengths resampled from the committed real lengths (2,312
harmless-base test pairs, chars = 4 x tokens; tests/real_shapes.py, shape "published", which also
plants hh-rlhf's defects: duplicates, turn markers inside replies, identical replies). The words
are generated: only the lengths and the row shape are real.

`qwen2`: a Qwen2ForCausalLM laid out as Qwen/Qwen2.5-*-Instruct ships (tied embeddings, grouped
key/value heads, ChatML template with a default system turn, eos <|im_end|>, pad <|endoftext|>,
bf16 safetensors) but small and random-init: hidden 512, MLP 1408, 8 layers, 8 query / 2 key-value
heads, a byte-level BPE of 8,192 tokens trained on the corpus's text. `prefalign init` takes it as
a local pretrained model (preset by the GPU's memory, LoRA), so the path is a pretrained model's;
its answers are noise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
SHAPE = dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
             num_key_value_heads=2, max_position_embeddings=4096)


def hh_file(out: Path, lengths: Path, rows: int) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    import real_shapes

    real_shapes.LENGTHS_FILE = lengths  # the committed real lengths (the module reads it at call time)
    if not lengths.is_file():
        raise SystemExit(f"{lengths}: the real hh-rlhf lengths are needed (copy ../shared/data/hh_rlhf_lengths.json)")
    records = real_shapes.hh_rlhf(rows, seed=22, shape="published")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for row in records:
            handle.write(json.dumps(row) + "\n")
    chars = sorted(len(r["chosen"]) for r in records)
    return {"rows": len(records), "chosen_chars_median": chars[len(chars) // 2],
            "chosen_chars_p95": chars[int(0.95 * len(chars))], "lengths_file": str(lengths)}


def qwen2_model(folder: Path, corpus: Path) -> dict:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    texts = []
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts += [row["chosen"], row["rejected"]]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=8192, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    state = json.loads(bpe.model.__getstate__())
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=state["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = QWEN_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, **SHAPE)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # safetensors
    tokenizer.save_pretrained(folder)
    return {"architecture": "Qwen2ForCausalLM", "parameters": sum(p.numel() for p in model.parameters()),
            "vocab": len(tokenizer), **SHAPE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("data")
    d.add_argument("out", type=Path)
    d.add_argument("--lengths", type=Path, default=REPO / "data/hh_rlhf_lengths.json")
    d.add_argument("--rows", type=int, default=2312, help="rows (default 2312: as many as the real pairs)")
    q = sub.add_parser("qwen2")
    q.add_argument("out", type=Path)
    q.add_argument("--corpus", type=Path, required=True, help="an hh-rlhf JSONL file whose text trains the tokenizer")
    args = parser.parse_args()
    facts = hh_file(args.out, args.lengths, args.rows) if args.what == "data" else qwen2_model(args.out, args.corpus)
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
