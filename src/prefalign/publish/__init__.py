"""Publishing a run's checkpoints: model cards in the Hub's format (card) and upload-ready folders (export)."""
