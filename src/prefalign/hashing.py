"""sha256 of files, folders and values: the one hasher of checkpoints, the manifest, the report.

Files are read in 1 MiB chunks, so a multi-GB checkpoint is hashed in constant memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

_CHUNK = 1 << 20
# A git commit (and so a Hugging Face hub revision): 40 lowercase hex digits. Branch and tag
# names move; only a commit pins the bytes a rerun reads.
COMMIT = re.compile(r"[0-9a-f]{40}")


def is_commit(revision) -> bool:
    return isinstance(revision, str) and COMMIT.fullmatch(revision) is not None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def canonical_sha256(value) -> str:
    """sha256 of a JSON-able value, independent of key order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()
