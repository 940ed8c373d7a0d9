"""Train/test decontamination by word n-gram overlap of prompts.

The split by prompt hash already keeps every exact prompt in one split, but a prompt is its
whole conversation: the question a test pair asks can still reach training as the last turn
of another conversation, in other wording, or as an earlier turn. This catches those: a
training prompt is contaminated when at least `overlap` of its word n-grams occur in the
questions the test split asks (the last user turn of each test prompt, the turn whose
answers are compared). n-grams are taken per turn, lower-cased, punctuation removed; a turn
shorter than n words is one n-gram of all its words, and a turn of fewer than `min_words` words
("Yes", "Go on.", "Thanks!") is left out on both sides: it asks nothing of its own, and counted
whole it would mark every training prompt holding the same reply to a follow-up (about half of
the drops on real multi-turn hh-rlhf were such false ones). Training prompts count their user and
system turns; assistant turns are left out (short replies such as "Yes." recur everywhere). Contaminated pairs leave the training split;
the test split is never changed, so evaluation numbers stay comparable.

n-grams are compared through Python's hash of the word tuple: it is salted per process, but
only set membership within one process is asked, so the outcome does not depend on the salt
(up to 64-bit collisions).
"""

from __future__ import annotations

from prefalign.data.dedup import words


def turn_ngrams(text: str, n: int, min_words: int) -> set[int]:
    w = words(text)
    if len(w) < min_words:
        return set()
    if len(w) <= n:
        return {hash(tuple(w))}
    return {hash(tuple(w[i:i + n])) for i in range(len(w) - n + 1)}


def prompt_ngrams(prompt: list[dict], n: int, min_words: int) -> frozenset[int]:
    """The n-grams of a training prompt: every user and system turn of at least `min_words` words."""
    grams: set[int] = set()
    for m in prompt:
        if m["role"] != "assistant":
            grams |= turn_ngrams(m["content"], n, min_words)
    return frozenset(grams)


def question_ngrams(prompt: list[dict], n: int, min_words: int) -> frozenset[int]:
    """The n-grams of what a test prompt asks: its last user turn (none when that turn is too short)."""
    for m in reversed(prompt):
        if m["role"] == "user":
            return frozenset(turn_ngrams(m["content"], n, min_words))
    return frozenset()


def overlap(grams: frozenset[int], test_grams: set[int]) -> float:
    """Share of a prompt's n-grams that occur in the test prompts."""
    return sum(1 for g in grams if g in test_grams) / len(grams) if grams else 0.0
