"""What DPO trains on, round by round: the dpo section's `pairs`, `mix_ratio` and `rounds`.

    pairs: offline    the train split's pairs (no sampling; rounds must be 1)
    pairs: onpolicy   round r's on-policy pairs (results/onpolicy/round-<r>/pairs.jsonl)
    pairs: mixed      those plus offline pairs, mix_ratio of the whole (results/onpolicy/round-<r>/mixed.jsonl)
    rounds: N         iterative DPO: round r samples from and starts at round r-1's DPO model (round 1: SFT)

The workflow (rules/onpolicy.smk, rules/dpo.smk) reads these to wire the rounds; the DPO step
itself only sees its start checkpoint and its train file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefalign.settings import Settings, expect

PAIRS = ("offline", "onpolicy", "mixed")


@dataclass
class PairsSettings(Settings):
    SECTION = "dpo"
    pairs: str = field(default="offline", metadata={"help": f"what DPO trains on: {', '.join(PAIRS)}"})
    mix_ratio: float = field(default=0.5, metadata={
        "help": "pairs mixed: the offline pairs' share of the DPO train set, in [0, 1)"})
    rounds: int = field(default=1, metadata={"help": "iterative DPO rounds (sample -> pair -> DPO)"})

    def __post_init__(self):
        expect(self.pairs in PAIRS, "pairs", f"one of {', '.join(PAIRS)}", self.pairs)
        expect(0 <= self.mix_ratio < 1, "mix_ratio", "a number in [0, 1)", self.mix_ratio)
        expect(isinstance(self.rounds, int) and self.rounds >= 1, "rounds", "an integer >= 1", self.rounds)
        expect(self.rounds == 1 or self.pairs != "offline", "rounds",
              "1 with pairs: offline (later rounds sample from the previous round: set pairs to onpolicy or mixed)",
              self.rounds)

    @property
    def samples(self) -> bool:
        """Whether any round samples on-policy pairs."""
        return self.pairs != "offline"
