"""The report stage: report.md and a self-contained report.html."""
