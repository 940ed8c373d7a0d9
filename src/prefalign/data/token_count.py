"""Token counts of records for the max_tokens filter, without a cycle in the workflow.

Where the tokenizer comes from decides the DAG. A pretrained model's tokenizer is named by
the config (model.name_or_path at model.revision), so the data stage loads it directly and
counts exactly what training will see; the data rules never depend on results/model. The
tiny model's tokenizer is trained *on the train split*, so it cannot exist before the data
stage; there the filter counts UTF-8 bytes of the ChatML rendering instead, a strict upper
bound for any byte-level BPE (every token covers at least one byte, and the template's
special tokens are counted by their spelled-out bytes). A pair that passes is certain to fit.

Counts are per part: (prompt, chosen, rejected), each with its template overhead.
"""

from __future__ import annotations

from prefalign.errors import ConfigError
from prefalign.hashing import is_commit

# The tiny model's template (prefalign.train.base_model.CHATML_TEMPLATE), per message.
_CHATML_OVERHEAD = {role: len(f"<|im_start|>{role}\n".encode()) + len("<|im_end|>\n".encode())
                    for role in ("system", "user", "assistant")}


class TokenCounter:
    name = "tokens"

    def lengths(self, records: list[dict]) -> list[tuple[int, int, int]]:
        raise NotImplementedError


class ByteCounter(TokenCounter):
    """UTF-8 bytes of each part rendered with ChatML: an upper bound of byte-level BPE tokens."""

    name = "ChatML bytes"

    def lengths(self, records):
        def size(messages):
            return sum(len(m["content"].encode("utf-8", "surrogatepass")) + _CHATML_OVERHEAD[m["role"]]
                       for m in messages)

        return [(size(r["prompt"]), size(r["chosen"]), size(r["rejected"])) for r in records]


class HFCounter(TokenCounter):
    """Tokens of a Hugging Face tokenizer: content tokens plus the chat template's per-message cost."""

    def __init__(self, tokenizer, name: str):
        self.tokenizer = tokenizer
        self.name = f"{name} tokens"
        self._overhead: dict[str, int] = {}

    def overhead(self, role: str) -> int:
        """Tokens the chat template adds around one message of `role` (0 when it has no template)."""
        if role not in self._overhead:
            cost = 0
            if getattr(self.tokenizer, "chat_template", None):
                try:
                    ids = self.tokenizer.apply_chat_template([{"role": role, "content": ""}], tokenize=True,
                                                             return_dict=False)
                    cost = len(ids)
                except Exception:  # noqa: BLE001 - a template may refuse a lone message; count contents only
                    cost = 0
            self._overhead[role] = cost
        return self._overhead[role]

    def lengths(self, records):
        parts = [[m for m in r[key]] for r in records for key in ("prompt", "chosen", "rejected")]
        texts = [m["content"] for messages in parts for m in messages]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        counts, i = [], 0
        for messages in parts:
            total = 0
            for m in messages:
                total += len(ids[i]) + self.overhead(m["role"])
                i += 1
            counts.append(total)
        return [tuple(counts[k:k + 3]) for k in range(0, len(counts), 3)]


def make_counter(tokenizer: str, revision: str | None = None) -> TokenCounter:
    """'bytes' (also what 'auto' means outside the workflow), a local tokenizer folder, or a hub
    model id pinned to a 40-hex commit."""
    if tokenizer in ("bytes", "auto"):
        return ByteCounter()
    from pathlib import Path

    local = Path(tokenizer).is_dir()
    if not local and not is_commit(revision):
        raise ConfigError(f"tokenizer_revision: expected a 40-hex-digit commit for hub tokenizer {tokenizer!r} "
                          f"(pinned, so reruns count the same tokens), got {revision!r}")
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=False,
                                               **({} if local else {"revision": revision}))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tokenizer: cannot load {tokenizer!r}"
                          f"{'' if local else f' at {revision}'}: {exc}") from None
    return HFCounter(loaded, Path(tokenizer).name if local else tokenizer)
