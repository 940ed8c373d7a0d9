"""The training stage: base model, SFT, DPO, backends, checkpoints."""
