"""A pretrained tokenizer made ready for chat training: template, end of turn, padding.

Every later step (SFT, DPO, evaluation) renders conversations with the tokenizer's chat
template and stops generating at its `eos_token`, so `build-base` settles these once, in the
base folder, and records what it chose in prefalign_base.json (`chat`):

  template     the tokenizer's own; else, when its vocabulary has ChatML's markers
               (<|im_start|>, <|im_end|>: Qwen2's base models), ChatML over them; else a plain
               text template (`### User:` / `### Assistant:`, each reply closed by the eos
               token), which needs no new tokens, so no embedding row is added untrained
               (LoRA would never train it)
  end of turn  the token the template closes a reply with (found by rendering one reply);
               it becomes the tokenizer's eos_token and leads the model's generation config's
               eos ids, so generation stops at the end of the reply, not at the end of text
  pad token    the tokenizer's own; else its unk token; else the end-of-turn token (padding
               positions are masked by length in TRL's collators and in evaluation, not by id)

Assumes a transformers tokenizer. Raises ConfigError when the template renders no reply (an
unusable template).
"""

from __future__ import annotations

from prefalign.errors import ConfigError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Only text and the tokenizer's own bos/eos: no token a pretrained model has not seen.
PLAIN = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '### System:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{% else %}{{ '### Assistant:\n' + message['content'] + eos_token + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)
_PROBE = "PREFALIGNPROBE"


def end_of_turn(tokenizer) -> str:
    """The special token the template puts right after a reply (its end of turn), else the eos token."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE}],
                                         tokenize=False)
    if _PROBE not in text:
        raise ConfigError("model.name_or_path: the tokenizer's chat template does not render an assistant reply; "
                          "use a model whose template does, or one without a template (prefalign then adds one)")
    after = text.split(_PROBE, 1)[1]
    specials = sorted({str(t) for t in tokenizer.all_special_tokens} | set(tokenizer.get_added_vocab()),
                      key=len, reverse=True)
    for i in range(len(after)):
        for token in specials:
            if token and after.startswith(token, i):
                return token
        if not after[i].isspace():
            break
    return tokenizer.eos_token


def prepare(tokenizer, model) -> dict:
    """Settle template, end of turn and padding on `tokenizer` and `model` (in place); what was chosen."""
    vocab = tokenizer.get_vocab()
    if tokenizer.chat_template:
        source = "model"
    elif "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        tokenizer.chat_template, source = CHATML, "prefalign: ChatML (the tokenizer has its markers, no template)"
    else:
        if tokenizer.eos_token is None:
            raise ConfigError("model.name_or_path: the tokenizer has no chat template and no eos token to end a "
                              "reply with; use a model whose tokenizer has either")
        tokenizer.chat_template, source = PLAIN, "prefalign: plain text (### User: / ### Assistant:, eos ends a reply)"
    eot = end_of_turn(tokenizer)
    original_eos = tokenizer.eos_token
    if eot and eot != tokenizer.eos_token:
        tokenizer.eos_token = eot
    pad_source = "model"
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is not None:
            tokenizer.pad_token, pad_source = tokenizer.unk_token, "unk token"
        else:
            tokenizer.pad_token, pad_source = tokenizer.eos_token, "end-of-turn token"
    eos_ids = [tokenizer.eos_token_id]
    for old in (model.generation_config.eos_token_id, tokenizer.convert_tokens_to_ids(original_eos)
                if original_eos else None):
        for token_id in (old if isinstance(old, list) else [old]):
            if token_id is not None and token_id not in eos_ids:
                eos_ids.append(token_id)
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    return {"template": source, "end_of_turn": tokenizer.eos_token, "eos_was": original_eos,
            "pad_token": tokenizer.pad_token, "pad_source": pad_source, "generation_eos_ids": eos_ids}
