"""The data stage: synthetic raw data, sources, adapters, normalize, filters, dedup, split."""
