"""OpenAssistant/oasst1 (and oasst2): message trees -> pairs of ranked sibling replies.

Each row is one message of a conversation tree:

    {"message_id": "...", "parent_id": null | "...", "message_tree_id": "...", "role": "prompter" | "assistant",
     "text": "...", "lang": "en", "rank": 0 | 1 | ... | null, "deleted": false, "review_result": true, ...}

The assistant replies to one prompter message are ranked by the annotators (rank 0 = best).
Every prompter message with at least two ranked replies yields pairs: the prompt is the
conversation from the root down to that message (prompter -> user, assistant -> assistant),
and with `pairing` best_vs_rest the best reply is chosen against each lower-ranked sibling,
with `all` every higher-ranked reply against every lower-ranked one. The language filter
(`languages`) sees `meta.lang`, the language of the prompter message the replies answer.

Three exports of the same messages are read, and told apart row by row:
  messages        one message per row (the hub dataset, *.messages.jsonl): as above
  nested tree     one root message per row, each message holding its `replies` (a list of
                  messages, nested): the tree is flattened, a reply's parent being the message
                  it is nested in
  trees.jsonl     one tree per row, {"message_tree_id", "tree_state", "prompt": <root message with
                  replies>, ...}: the same, the tree's id given to every message that lacks one
A row of none of these shapes is a bad record naming the shapes. The unit of the ledger is the
message: a nested row counts every message in it, and each message ends in a pair or the ledger.

This is a tree format: rows are not pairs one to one. Every row either takes part in at least
one pair (as a prompt turn or a reply) or is ledgered with a reason:
  deleted, failed_review   the message was deleted or failed review;
  orphan                   its parent is missing, deleted, failed review or not in the file;
  duplicate_message_id     a second row with an id already seen;
  not_in_pair              valid, but no pair uses it (unranked, only ranked reply, or no
                           ranked replies below a prompter message).
A pair's ledger position is its rejected reply's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from prefalign.data.adapters.base import BadRecord, Where, optional, require
from prefalign.records import make_record, message

PAIRINGS = ("best_vs_rest", "all")
_ROLES = {"prompter": "user", "assistant": "assistant"}


@dataclass
class Message:
    id: str
    parent: str | None
    role: str
    text: str
    lang: str | None
    rank: int | None
    excluded: str | None  # a ledger reason when the message itself is unusable
    tree: str | None
    where: Where


@dataclass
class Drop:
    """A row no pair uses, with its ledger reason."""

    where: Where
    id: str
    reason: str
    detail: str


def flatten(row, where: Where) -> list[tuple[dict, str]]:
    """The messages of one row of any export, as (message without replies, key path of it in the row).

    BadRecord (naming the key path) when the row is of no export's shape or its nesting is broken.
    """
    if not isinstance(row, dict):
        raise BadRecord("<row>", f"expected a JSON object, got {type(row).__name__}")
    if isinstance(row.get("prompt"), dict) and "message_id" not in row:  # trees.jsonl: {"prompt": root, ...}
        return _with_tree_id(list(_walk(row["prompt"], "prompt", None)), optional(row, "message_tree_id", str))
    if "message_id" in row:
        return _with_tree_id(list(_walk(row, "", None)), None) if "replies" in row else [(row, "")]
    keys = ", ".join(sorted(map(str, row))) or "no keys"
    raise BadRecord("message_id", "missing: expected an oasst1 message (message_id, parent_id, role, text, ...), "
                                  "a nested tree (a root message with `replies`) or a trees.jsonl tree (`prompt` "
                                  f"holding the root message); the row has {keys}")


def _with_tree_id(messages: list[tuple[dict, str]], tree: str | None) -> list[tuple[dict, str]]:
    """Give every message of one tree its tree id: the wrapper's, else the root's, else the root's
    message_id (which is what oasst's message_tree_id is)."""
    root = messages[0][0]
    tree = tree or root.get("message_tree_id") or root.get("message_id")
    if not isinstance(tree, str):
        return messages
    return [(m if m.get("message_tree_id") else {**m, "message_tree_id": tree}, key) for m, key in messages]


def _walk(node, key: str, parent: str | None):
    """Depth first: the message at `key` (its replies removed, parent_id from its nesting), then its replies."""
    if not isinstance(node, dict):
        raise BadRecord(key or "<row>", f"expected a message object, got {type(node).__name__}")
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise BadRecord(f"{key}.replies".lstrip("."), f"expected a list of messages, got {type(replies).__name__}")
    message = {k: v for k, v in node.items() if k != "replies"}
    if parent is not None:  # the nesting is the tree: a reply's parent is the message holding it
        message["parent_id"] = parent
    yield message, key
    # A message without an id makes its replies orphans (never roots of their own).
    me = node.get("message_id") if isinstance(node.get("message_id"), str) else f"<no message_id at {key or 'row'}>"
    for i, reply in enumerate(replies):
        yield from _walk(reply, f"{key}.replies[{i}]".lstrip("."), me)


def parse(row, where: Where) -> Message:
    """One message -> Message; BadRecord names the field when it is not an oasst message."""
    message_id = require(row, "message_id", str)
    parent = optional(row, "parent_id", str)
    role = require(row, "role", str)
    if role not in _ROLES:
        raise BadRecord("role", f"expected 'prompter' or 'assistant', got {role!r}")
    text = require(row, "text", str)
    rank = optional(row, "rank", (int, float))
    if rank is not None and (rank != int(rank) or rank < 0):
        raise BadRecord("rank", f"expected an integer >= 0 or null, got {rank!r}")
    excluded = None
    if optional(row, "deleted", bool):
        excluded = "deleted"
    elif optional(row, "review_result", bool) is False:
        excluded = "failed_review"
    return Message(message_id, parent, role, text, optional(row, "lang", str),
                   None if rank is None else int(rank), excluded, optional(row, "message_tree_id", str), where)


@dataclass
class Trees:
    """What the message trees make: pairs, the rows no pair uses, and how many rows pairs use."""

    pairs: list[dict]
    drops: list[Drop]
    used_rows: int

    def in_order(self) -> list[dict | Drop]:
        """Pairs (at their rejected reply's row) and drops, by row; stable for equal rows."""
        return sorted([*self.pairs, *self.drops], key=lambda x: x.where.line if isinstance(x, Drop) else
                      x["meta"][next(k for k in ("line", "row") if k in x["meta"])])


def build_pairs(parsed: Iterable[Message], pairing: str = "best_vs_rest") -> Trees:
    """Records for every ranked sibling pair, and a Drop for every row no pair uses.

    Pairs come in the order of their parent prompter message's row, then by rank.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing: expected one of {', '.join(PAIRINGS)}, got {pairing!r}")
    by_id: dict[str, Message] = {}
    drops: list[Drop] = []
    for m in parsed:
        if m.id in by_id:
            drops.append(Drop(m.where, m.id, "duplicate_message_id", f"message {m.id} already read at "
                                                                     f"{by_id[m.id].where.unit} {by_id[m.id].where.line}"))
        else:
            by_id[m.id] = m
    valid = _valid_messages(by_id, drops)
    children: dict[str, list[Message]] = {}
    for m in valid.values():
        if m.parent is not None:
            children.setdefault(m.parent, []).append(m)

    used: set[str] = set()
    pairs: list[dict] = []
    for parent in sorted(valid.values(), key=lambda m: m.where.line):
        if parent.role != "prompter":
            continue
        ranked = sorted((c for c in children.get(parent.id, []) if c.role == "assistant" and c.rank is not None),
                        key=lambda c: (c.rank, c.where.line))
        if len(ranked) < 2:
            continue
        prompt_chain = _chain(parent, valid)
        used.update(m.id for m in prompt_chain)
        used.update(c.id for c in ranked)
        prompt = [message(_ROLES[m.role], m.text) for m in prompt_chain]
        for ci, ri in _pair_positions(len(ranked), pairing):
            chosen, rejected = ranked[ci], ranked[ri]
            where = rejected.where
            meta = {**where.provenance(), "tree_id": parent.tree, "parent_id": parent.id, "chosen_id": chosen.id,
                    "rejected_id": rejected.id, "chosen_rank": chosen.rank, "rejected_rank": rejected.rank,
                    "lang": parent.lang}
            record_id = f"{where.dataset}/{where.split}/{parent.id}/{ci}-{ri}"
            pairs.append(make_record(record_id, where.dataset, prompt, chosen.text, rejected.text, meta))

    for m in valid.values():
        if m.id not in used:
            drops.append(Drop(m.where, m.id, "not_in_pair", _why_unused(m)))
    return Trees(pairs, sorted(drops, key=lambda d: d.where.line), len(used))


def _pair_positions(n: int, pairing: str) -> list[tuple[int, int]]:
    if pairing == "best_vs_rest":
        return [(0, j) for j in range(1, n)]
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _valid_messages(by_id: dict[str, Message], drops: list[Drop]) -> dict[str, Message]:
    """Messages usable themselves and through every ancestor; the others go to `drops`."""
    status: dict[str, tuple[str, str] | None] = {}  # id -> None (valid) or (reason, detail)
    for start in by_id.values():
        path, on_path, node = [], set(), start
        while node.id not in status:  # walk up to a known message, a root or a dead end
            if node.id in on_path:
                for p in path:
                    status[p.id] = ("orphan", f"the parent chain of {p.id} loops")
                break
            path.append(node)
            on_path.add(node.id)
            if node.excluded or node.parent is None or node.parent not in by_id:
                break
            node = by_id[node.parent]
        for p in reversed(path):  # then settle the path from the top down
            if p.id in status:
                continue
            if p.excluded:
                status[p.id] = (p.excluded, f"message {p.id} is {p.excluded.replace('_', ' ')}")
            elif p.parent is None:
                status[p.id] = None
            elif p.parent not in by_id:
                status[p.id] = ("orphan", f"parent {p.parent} is not in the file")
            else:
                up = status[p.parent]
                status[p.id] = None if up is None else ("orphan", f"parent {p.parent} is unusable ({up[0]})")
    valid = {}
    for m in by_id.values():
        if status[m.id] is None:
            valid[m.id] = m
        else:
            drops.append(Drop(m.where, m.id, *status[m.id]))
    return valid


def _chain(m: Message, valid: dict[str, Message]) -> list[Message]:
    """The messages from the tree's root down to m."""
    chain = [m]
    while chain[-1].parent is not None:
        chain.append(valid[chain[-1].parent])
    return chain[::-1]


def _why_unused(m: Message) -> str:
    if m.role == "assistant":
        what = "an unranked reply" if m.rank is None else "the only ranked reply to its prompt"
        return f"{what}, with no ranked pair below it"
    return "a prompter message with no two ranked assistant replies at or below it"
