"""The reference log-probs file (`prefalign reference-logps` writes it, `prefalign dpo` reads it).

One JSON object: `format`, `settings` and `resolved` of the pass, `train` (the train file's
path, sha256 and counts) and `pairs`: one {"id", "chosen", "rejected"} per train record, in
file order (null for a pair TRL drops because its prompt alone fills max_length).
"""

from __future__ import annotations

import json
from pathlib import Path

from prefalign.errors import RecordError

FORMAT = "prefalign-reference-logps/1"
# What must agree between the file and the DPO run that reads it: anything else would change the numbers.
MUST_MATCH = ("max_length",)
MUST_MATCH_RESOLVED = ("backend", "precision")


def read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: cannot read the reference log-probs: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecordError(f"{path}: key 'format': expected {FORMAT!r} (written by `prefalign reference-logps`)")
    return data


def check_pairs(path: Path, pairs: list[dict], ids: list[str]) -> None:
    """The file must hold exactly the train records, in order; else RecordError naming the first difference."""
    for index, (pair, wanted) in enumerate(zip(pairs, ids)):
        if pair.get("id") != wanted:
            raise RecordError(f"{path}: pair {index}: key 'id': expected {wanted!r} (line {index + 1} of the train "
                              f"file), got {pair.get('id')!r}: computed for another train file; rerun reference-logps")
    if len(pairs) != len(ids):
        raise RecordError(f"{path}: key 'pairs': expected {len(ids)} pairs (the train file's records), got "
                          f"{len(pairs)}: computed for another train file; rerun reference-logps")


def mismatch(data: dict, settings, resolved) -> str | None:
    """Why these log-probs are not this DPO run's reference (None: they are)."""
    for key in MUST_MATCH:
        if data["settings"].get(key) != getattr(settings, key):
            return f"{key} {data['settings'].get(key)} here, {getattr(settings, key)} in this run"
    for key in MUST_MATCH_RESOLVED:
        if data["resolved"].get(key) != getattr(resolved, key):
            return f"{key} {data['resolved'].get(key)} here, {getattr(resolved, key)} in this run"
    return None
