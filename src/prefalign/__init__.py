"""prefalign: raw preference datasets -> filtered JSONL -> SFT -> DPO -> evaluation report."""

__version__ = "0.1.0"
