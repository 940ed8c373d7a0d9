"""Turn order of a prompt: two turns of one role in a row (`consecutive_same_role`).

Real transcripts hold them (hh-rlhf has "\n\nHuman: ...\n\nHuman: ..."; oasst1 and generic pairs
can put an assistant turn right before the reply), and chat templates that enforce alternation
(Llama 2, Mistral, Gemma) raise on them later, in the middle of training. `data.consecutive_turns`
decides, for every format, in the normalize step:

    merge  (default)  join each run of same-role turns into one turn (texts separated by a blank
                      line); the record's `meta.merged_turns` counts the turns merged away, so no
                      text changes without a note. A prompt that ends with an assistant turn cannot
                      be merged (its last turn is shared by both replies): such pairs are dropped.
    drop              drop every pair whose prompt has two turns of one role in a row, or ends
                      with an assistant turn (ledger reason consecutive_same_role)
    keep              change nothing (for templates that accept any order, e.g. ChatML)
"""

from __future__ import annotations

POLICIES = ("merge", "drop", "keep")
REASON = "consecutive_same_role"


def runs(prompt: list[dict]) -> int:
    """Turns that follow a turn of the same role."""
    return sum(1 for a, b in zip(prompt, prompt[1:]) if a["role"] == b["role"])


def merged(prompt: list[dict]) -> list[dict]:
    out: list[dict] = []
    for m in prompt:
        if out and out[-1]["role"] == m["role"]:
            out[-1] = {"role": m["role"], "content": f"{out[-1]['content']}\n\n{m['content']}"}
        else:
            out.append(dict(m))
    return out


def apply(record: dict, policy: str) -> str | None:
    """Apply `policy` to the record's prompt (in place); the drop's detail, or None to keep it."""
    if policy == "keep":
        return None
    prompt = record["prompt"]
    if prompt and prompt[-1]["role"] == "assistant":
        return "the prompt ends with an assistant turn, so each reply follows an assistant turn"
    repeats = runs(prompt)
    if not repeats:
        return None
    if policy == "drop":
        where = next(i for i, (a, b) in enumerate(zip(prompt, prompt[1:]), 2) if a["role"] == b["role"])
        return f"prompt turn {where} is a second {prompt[where - 1]['role']} turn in a row ({repeats} such turn(s))"
    record["prompt"] = merged(prompt)
    record["meta"]["merged_turns"] = repeats
    return None
