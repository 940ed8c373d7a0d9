"""The evaluation stage: held-out metrics, judges, intervals, comparisons, checks, human A/B."""
