"""Provenance: the run's manifest and its verification."""
