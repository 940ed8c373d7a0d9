"""Step `build-base`: the base model and tokenizer every later step starts from.

source: tiny        trains a byte-level BPE tokenizer on the train split (with a ChatML chat
                    template) and initializes a small Llama from the config: offline, seconds.
source: pretrained  loads `name_or_path` (a hub id pinned by `revision`, or a local folder in
                    the hub's layout) with trust_remote_code off and safetensors only, settles
                    its chat template, end-of-turn and pad tokens (prefalign.train.chat: a
                    tokenizer without a template gets one, recorded), and saves it in the
                    output folder so later steps never touch the hub.

Output folder: config.json, model.safetensors, tokenizer files, chat_template.jinja and
prefalign_base.json (what was built or loaded, parameter count, file digests).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.errors import ConfigError
from prefalign.hashing import is_commit, sha256_file
from prefalign.jsonl import read_jsonl, write_json
from prefalign.settings import Settings, expect, seed_field, threads_field
from prefalign.train import chat

SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class BaseModelSettings(Settings):
    SECTION = "model"
    source: str = field(default="tiny", metadata={"help": "'tiny' (built offline) or 'pretrained' (name_or_path)"})
    name_or_path: str | None = field(default=None, metadata={"help": "pretrained: hub id or local folder"})
    revision: str | None = field(default=None, metadata={"help": "pretrained hub id: the commit to load (40 hex digits)"})
    strict: bool = field(default=True, metadata={
        "key": "strict", "help": "refuse a hub id without a 40-hex commit revision"})
    vocab_size: int = field(default=400, metadata={"help": "tiny: BPE vocabulary size asked for (tokens)"})
    hidden_size: int = field(default=128, metadata={"help": "tiny: model width"})
    intermediate_size: int = field(default=384, metadata={"help": "tiny: MLP width"})
    num_layers: int = field(default=2, metadata={"help": "tiny: transformer layers"})
    num_heads: int = field(default=4, metadata={"help": "tiny: attention heads"})
    max_position_embeddings: int = field(default=256, metadata={"help": "tiny: longest sequence (tokens)"})
    seed: int = seed_field("the weight initialization")
    threads: int = threads_field()

    def __post_init__(self):
        expect(self.source in ("tiny", "pretrained"), "source", "'tiny' or 'pretrained'", self.source)
        if self.source == "pretrained":
            expect(bool(self.name_or_path), "name_or_path", "a hub id or local folder when source is pretrained",
                  self.name_or_path)
        expect(self.vocab_size >= 300, "vocab_size", "an integer >= 300 (256 bytes + specials + merges)",
              self.vocab_size)
        expect(self.hidden_size % self.num_heads == 0, "hidden_size", f"a multiple of num_heads ({self.num_heads})",
              self.hidden_size)
        expect(self.threads >= 1, "threads", "an integer >= 1", self.threads)


def corpus(records: list[dict]):
    """Every message of every record, rendered as the model will see it."""
    for record in records:
        for key in ("prompt", "chosen", "rejected"):
            for m in record[key]:
                yield f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"


def train_tokenizer(records: list[dict], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # Digits split one by one: numbers then share per-digit tokens, which a tiny model can
    # learn to copy and compare; BPE merges everything else.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(records), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<|pad|>", eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>"]
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(records: list[dict], settings: BaseModelSettings):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(records, settings.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads,
        max_position_embeddings=settings.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(settings.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    return model, tokenizer


def load_pretrained(settings: BaseModelSettings):
    """Load a pretrained model the safe way: pinned revision, no remote code, safetensors only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(settings.name_or_path).is_dir()
    pinned = is_commit(settings.revision)
    if not local and settings.strict:
        expect(pinned, "revision", "a 40-hex-digit commit for a hub model (pinned, so reruns load the same weights)",
              settings.revision)
    elif not local and not pinned:
        print(f"warning: {settings.name_or_path} is not pinned to a commit (strict: false); a rerun may load other "
              "weights", flush=True)
    kwargs = {"revision": settings.revision} if settings.revision and not local else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.name_or_path, trust_remote_code=False, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            settings.name_or_path, trust_remote_code=False, use_safetensors=True, dtype="auto", **kwargs
        )
    except (OSError, ValueError) as exc:
        # No safetensors weights (pickle files are never loaded: they can run code), or code
        # that would need trust_remote_code: refused, with transformers' reason.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"name_or_path: cannot load {settings.name_or_path!r} safely "
                          f"(safetensors only, trust_remote_code off): {first}") from None
    return model, tokenizer, chat.prepare(tokenizer, model)


def file_digests(folder: Path) -> dict[str, str]:
    return {
        p.name: sha256_file(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "prefalign_base.json"
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, help="training records (JSONL): the tiny tokenizer's corpus")
    parser.add_argument("--out", type=Path, required=True, help="output folder: model + tokenizer (safetensors)")
    parser.add_argument("--environment", type=Path, help="output: software and hardware it ran on (JSON)")
    BaseModelSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = BaseModelSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True))
    runtime.setup(settings.seed, settings.threads)
    if settings.source == "tiny":
        expect(args.train is not None, "train", "a records file (--train) to train the tiny tokenizer on", None)
        model, tokenizer = build_tiny(read_jsonl(args.train), settings)
        chat_info = {"template": "prefalign: ChatML (the tiny tokenizer's own)", "end_of_turn": tokenizer.eos_token,
                     "pad_token": tokenizer.pad_token}
    else:
        model, tokenizer, chat_info = load_pretrained(settings)
        print("chat:", json.dumps(chat_info, sort_keys=True), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "settings": settings.to_dict(),
        "parameters": n_params,
        "vocab_size": len(tokenizer),
        "architecture": type(model).__name__,
        "chat": chat_info,
        "files": file_digests(args.out),
    }
    write_json(args.out / "prefalign_base.json", info)
    if args.environment:
        write_json(args.environment, runtime.environment())
    print(f"{type(model).__name__}: {n_params:,} parameters, vocabulary {len(tokenizer)} -> {args.out}")
