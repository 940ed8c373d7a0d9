"""Near duplicates: MinHash LSH (rensa: R-MinHash sketches and its LSH index, in Rust) for
candidates, exact Jaccard similarity of each field for the decision.

Two preference pairs are near duplicates when their prompt, chosen and rejected are each
near-identical: the Jaccard similarity of the fields' word n-gram sets (lower-cased,
punctuation removed) is at least `threshold` for all three. Comparing fields separately
matters for preference data: pairs built from one prompt (oasst1 ranks several replies; SHP
has many comment pairs per post) share a long prompt and often the chosen reply, and a
similarity over the concatenated text would call them duplicates although their rejected
replies differ.

How, chunk by chunk and in input order:
  1. each pair is sketched from the set of words of its three fields (rensa's batch API,
     one call per chunk) and inserted into rensa's RMinHashLSH, which flags every pair that
     shares a band with a pair already indexed or in the chunk;
  2. a flagged pair is looked up in the index (rensa's query), which names its candidates;
  3. each earlier, still kept candidate is compared exactly, field by field, on word
     n-grams; the first that passes makes the pair a near duplicate of it.
Bands are chosen so that a pair whose word sets are exactly at the threshold is a candidate
with probability >= 0.9 (lsh_bands); near duplicates usually sit well above it. The sketches
only propose candidates, so estimation noise never decides a drop, and the ledger names the
pair each duplicate repeats. Greedy and order-dependent by design: the first occurrence
survives.
"""

from __future__ import annotations

import string
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

FIELDS = ("prompt", "chosen", "rejected")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed: the unit of near-duplicate and overlap checks."""
    return text.lower().translate(_PUNCTUATION).split()


def shingles(text: str, n: int) -> list[str]:
    """Word n-grams of a text; a text of at most n words is one shingle (possibly empty)."""
    w = words(text)
    if len(w) <= n:
        return [" ".join(w)]
    return [" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]


def field_text(record: dict, key: str) -> str:
    return "\n".join(m["content"] for m in record[key])


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def lsh_bands(perms: int, threshold: float, recall: float = 0.9) -> tuple[int, int]:
    """(bands, rows per band), bands * rows = perms: the widest bands (fewest false candidates)
    that make a pair of sketch similarity `threshold` a candidate with probability >= `recall`."""
    for rows in range(perms, 0, -1):
        if perms % rows == 0 and 1 - (1 - threshold ** rows) ** (perms // rows) >= recall:
            return perms // rows, rows
    return perms, 1


@dataclass(frozen=True)
class Match:
    """Pair `index` repeats the earlier pair `of`, with the Jaccard similarity of each field."""

    index: int
    of: int
    similarity: tuple[float, float, float]


class NearDuplicates:
    """Feed chunks of records in input order; `add` returns the near duplicates among them.

    `load(index)` must return any earlier record; `alive(index)` says whether an earlier
    record is still in the mix (not dropped as an exact duplicate, say): only those can be
    matched. Indices count records over all chunks.
    """

    def __init__(self, load: Callable[[int], dict], alive: Callable[[int], bool], threshold: float = 0.8,
                 ngram: int = 3, perms: int = 128, seed: int = 0):
        import rensa

        self.rensa, self.load, self.alive = rensa, load, alive
        self.threshold, self.ngram, self.perms, self.seed = threshold, ngram, perms, seed
        self.lsh = rensa.RMinHashLSH(threshold, perms, lsh_bands(perms, threshold)[0])
        self.count = 0
        self.dropped: set[int] = set()
        self._sets: OrderedDict[int, tuple[frozenset, ...]] = OrderedDict()  # a small LRU cache

    def shingle_sets(self, index: int, record: dict | None = None) -> tuple[frozenset, ...]:
        """Each field's n-gram set of the record at `index` (loaded when not given)."""
        if index in self._sets:
            self._sets.move_to_end(index)
            return self._sets[index]
        record = record if record is not None else self.load(index)
        sets = tuple(frozenset(shingles(field_text(record, key), self.ngram)) for key in FIELDS)
        self._sets[index] = sets
        if len(self._sets) > 1024:
            self._sets.popitem(last=False)
        return sets

    def add(self, records: list[dict]) -> list[Match]:
        if not records:
            return []
        start, self.count = self.count, self.count + len(records)
        tokens = [words("\n".join(m["content"] for key in FIELDS for m in r[key])) for r in records]
        sketches = self.rensa.RMinHash.digest_matrix_from_token_sets(tokens, self.perms, self.seed)
        flags = self.lsh.insert_matrix_and_query_duplicate_flags(sketches, start)
        flagged = [k for k, flag in enumerate(flags) if flag and self.alive(start + k)]
        if not flagged:
            return []
        queries = self.rensa.RMinHash.from_token_sets([tokens[k] for k in flagged], self.perms, self.seed)
        matches = []
        for k, query in zip(flagged, queries):
            j = start + k
            mine = self.shingle_sets(j, records[k])
            for i in sorted(self.lsh.query(query)):
                if i >= j:
                    break
                if i in self.dropped or not self.alive(i):
                    continue
                earlier = self.shingle_sets(i, records[i - start] if i >= start else None)
                similarity = tuple(jaccard(a, b) for a, b in zip(earlier, mine))
                if min(similarity) >= self.threshold:
                    self.dropped.add(j)
                    matches.append(Match(j, i, tuple(round(s, 3) for s in similarity)))
                    break
        return matches
