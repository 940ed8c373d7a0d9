"""Near duplicates: MinHash sketches (rensa's R-MinHash, Rust) and banded LSH over pair fields.

Two preference pairs are near duplicates when their prompt, chosen and rejected are each
near-identical: the estimated Jaccard similarity of the fields' word n-gram sets is at least
`threshold` for all three. Comparing fields separately matters for preference data: pairs
built from one prompt (oasst1 ranks several replies; SHP has many comment pairs per post)
share a long prompt and often the chosen reply, and a similarity over the concatenated text
would call them duplicates although their rejected replies differ.

How: each field of each pair gets a K-slot R-MinHash sketch from rensa (its batch API, one
call per chunk of pairs). Candidate pairs come from locality-sensitive hashing with bands
that span all three fields (r slots of each), so two pairs collide in a band only when all
three fields agree on those slots; r is the largest that still makes a pair whose fields all
sit at the threshold a candidate with probability >= 0.9 (lsh_bands). Candidates are then verified with
the exact Jaccard similarity of their shingle sets, field by field: the sketches only find
candidates, so estimation noise (large for short fields) never decides a drop. rensa's own LSH index is not used: it can only flag rows, not
return which earlier row they match, and the ledger names the pair each duplicate repeats.

Greedy and order-dependent by design: pairs are visited in input order and a pair is
dropped when it matches an earlier pair that is kept, so the first occurrence survives.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable

import numpy as np

FIELDS = ("prompt", "chosen", "rejected")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})
_MULTIPLIERS = np.random.default_rng(20240917).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)
BUCKET_DEPTH = 16  # within one LSH bucket, a pair is compared with at most this many earlier ones


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed: the unit of near-duplicate and overlap checks."""
    return text.lower().translate(_PUNCTUATION).split()


def shingles(text: str, n: int) -> list[str]:
    """Word n-grams of a text; a text shorter than n words is one shingle (possibly empty)."""
    w = words(text)
    if len(w) <= n:
        return [" ".join(w)]
    return [" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]


def field_text(record: dict, key: str) -> str:
    return "\n".join(m["content"] for m in record[key])


def lsh_bands(perms: int, threshold: float, fields: int = len(FIELDS), recall: float = 0.9) -> tuple[int, int]:
    """(bands, rows per field per band), bands * rows <= perms, for the near-duplicate threshold.

    Two pairs collide in a band with probability s^rows, s the product of their fields'
    similarities; the worst near duplicate has every field at the threshold, s = threshold^fields.
    The widest bands (fewest false candidates) that still make such a pair a candidate with
    probability >= `recall` are chosen; a pair with one field edited and two identical ones
    (the usual near duplicate) is then a candidate with probability ~1.
    """
    target = threshold ** fields
    for rows in range(perms, 0, -1):
        bands = perms // rows
        if 1 - (1 - target ** rows) ** bands >= recall:
            return bands, rows
    return perms, 1


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class Match:
    """Pair `index` repeats the earlier pair `of`, with the Jaccard similarity of each field."""

    index: int
    of: int
    similarity: tuple[float, float, float]


class NearDuplicates:
    """Collects field sketches chunk by chunk, then finds near duplicates among live pairs."""

    def __init__(self, threshold: float = 0.8, ngram: int = 3, perms: int = 128, seed: int = 0):
        import rensa

        self.rensa = rensa
        self.threshold, self.ngram, self.perms, self.seed = threshold, ngram, perms, seed
        self.chunks: list[np.ndarray] = []

    def add(self, records: list[dict]) -> None:
        """Sketch a chunk of records: one (len, fields, perms) uint32 block."""
        if not records:
            return
        token_sets = [shingles(field_text(r, key), self.ngram) for r in records for key in FIELDS]
        matrix = self.rensa.RMinHash.digest_matrix_from_token_sets(token_sets, self.perms, self.seed)
        block = np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(records), len(FIELDS), self.perms)
        self.chunks.append(block)

    def signatures(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((0, len(FIELDS), self.perms), dtype=np.uint32)
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0]

    def candidates(self, sig: np.ndarray, live: np.ndarray) -> np.ndarray:
        """(i, j) index pairs, i < j, both live, sharing at least one LSH band."""
        bands, rows = lsh_bands(self.perms, self.threshold)
        index = np.flatnonzero(live)
        if len(index) < 2:
            return np.zeros((0, 2), dtype=np.int64)
        found = []
        for b in range(bands):
            block = sig[:, :, b * rows:(b + 1) * rows][index].reshape(len(index), -1).astype(np.uint64)
            key = np.zeros(len(index), dtype=np.uint64)
            for c in range(block.shape[1]):
                key += block[:, c] * _MULTIPLIERS[(b * block.shape[1] + c) % len(_MULTIPLIERS)]
            key = _splitmix(key)
            order = np.lexsort((index, key))
            keys, members = key[order], index[order]
            for depth in range(1, BUCKET_DEPTH + 1):
                same = keys[:-depth] == keys[depth:]
                if not same.any():
                    break
                found.append(np.stack([members[:-depth][same], members[depth:][same]], axis=1))
        if not found:
            return np.zeros((0, 2), dtype=np.int64)
        pairs = np.concatenate(found)
        return np.unique(pairs, axis=0)

    def find(self, live: np.ndarray, load: Callable[[int], dict]) -> list[Match]:
        """Matches among the live pairs, first occurrence kept (see the module docstring).

        `load(index)` returns the record at `index`: only records in candidate pairs are loaded.
        """
        pairs = self.candidates(self.signatures(), live)
        sets: dict[int, list[set[str]]] = {}

        def shingle_sets(index: int) -> list[set[str]]:
            if index not in sets:
                record = load(index)
                sets[index] = [set(shingles(field_text(record, key), self.ngram)) for key in FIELDS]
            return sets[index]

        kept = live.copy()
        matches = []
        for i, j in pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))].tolist() if len(pairs) else []:
            if not (kept[i] and kept[j]):
                continue
            similarity = tuple(jaccard(a, b) for a, b in zip(shingle_sets(i), shingle_sets(j)))
            if min(similarity) >= self.threshold:
                kept[j] = False
                matches.append(Match(j, i, tuple(round(x, 3) for x in similarity)))
        return matches


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
