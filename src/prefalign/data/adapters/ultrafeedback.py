"""UltraFeedback binarized (HuggingFaceH4/ultrafeedback_binarized and its cleaned copies).

    {"prompt": "...", "prompt_id": "...",
     "chosen":   [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "rejected": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "score_chosen": 8.5, "score_rejected": 6.0, ...}

The turns before the final assistant reply are the prompt; chosen and rejected must agree on
them (else `prompt_mismatch`). Lists holding only the reply take the `prompt` string as the
user turn. Equal scores carry no preference and are rejected as `tied_scores`. Scores and
`prompt_id` go to `meta`.
"""

from __future__ import annotations

from prefalign.data.adapters.base import Rejected, Where, messages, optional, require, split_conversation
from prefalign.records import make_record, message


def adapt(row, where: Where) -> dict:
    chosen_prompt, chosen = split_conversation(messages(require(row, "chosen", list), "chosen", allow_string=False),
                                               "chosen")
    rejected_prompt, rejected = split_conversation(
        messages(require(row, "rejected", list), "rejected", allow_string=False), "rejected")
    if chosen_prompt != rejected_prompt:
        raise Rejected("prompt_mismatch", "chosen and rejected conversations differ before the final reply")
    prompt = chosen_prompt
    if not prompt:
        text = optional(row, "prompt", str)
        if text is None:
            raise Rejected("no_prompt", "the message lists hold only the reply and the row has no prompt")
        prompt = [message("user", text)]
    score_chosen = optional(row, "score_chosen", (int, float))
    score_rejected = optional(row, "score_rejected", (int, float))
    if score_chosen is not None and score_chosen == score_rejected:
        raise Rejected("tied_scores", f"score_chosen = score_rejected = {score_chosen}")
    meta = {**where.provenance(), "prompt_id": optional(row, "prompt_id", str),
            "score_chosen": score_chosen, "score_rejected": score_rejected}
    return make_record(where.record_id, where.dataset, prompt, chosen, rejected, meta)
