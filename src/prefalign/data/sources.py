"""Where raw rows come from: local files (JSON Lines, JSON arrays, Parquet; optionally gzip)
and Hugging Face hub datasets pinned to a commit.

A source yields `(position, row, problem)`: the 1-based line (JSON Lines) or row (the rest),
the parsed row, and None; or None and a problem for a line that is not JSON or not UTF-8.
Such lines are reported one by one so the caller can stop or quarantine them. A file that
cannot be read at all (truncated gzip, a JSON array with a syntax error, a broken Parquet
footer, a hub dataset that is not cached while offline) raises RecordError naming it.

Hub datasets go through the real `datasets.load_dataset`, on the snapshot of the pinned
commit that `huggingface_hub.snapshot_download` puts in the hub cache. Why not
`load_dataset(repo_id, revision=...)` directly: with HF_HUB_OFFLINE=1, datasets 5.2 (and
4.x) ignores the revision and falls back to "the latest cached version" of the dataset
(datasets/load.py, CachedDatasetModuleFactory), so a rerun could silently read other data.
The snapshot folder is named by the commit: the pin holds online and offline.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from prefalign import jsonl
from prefalign.errors import RecordError
from prefalign.hashing import is_commit

FILE_FORMATS = ("auto", "jsonl", "json", "parquet")
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


# A Git LFS pointer (what a clone without git-lfs holds): a small text file whose first line is the
# spec's version URL and which names the object's oid (https://github.com/git-lfs/git-lfs, docs/spec.md).
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
LFS_POINTER_MAX = 1024  # the spec: pointer files are smaller than 1024 bytes


def lfs_pointer(path: Path) -> None:
    """Raise RecordError (reason lfs_pointer) when `path` is a Git LFS pointer, not the data itself."""
    with open(path, "rb") as handle:
        head = handle.read(LFS_POINTER_MAX + 1)
    if not head.startswith(LFS_POINTER) or len(head) > LFS_POINTER_MAX:
        return
    fields = dict(line.split(" ", 1) for line in head.decode("ascii", "replace").splitlines() if " " in line)
    if "oid" not in fields:  # a data file that merely starts like one
        return
    size = fields.get("size", "?").strip()
    raise RecordError(f"{path}: lfs_pointer: a Git LFS pointer file ({len(head)} bytes), not the data; the real "
                      f"file ({size} bytes, {fields['oid'].strip()}) is in Git LFS, and this "
                      "clone was made without git-lfs. Run `git lfs pull` in the dataset's repository (or download "
                      "the file itself) and try again")


@dataclass(frozen=True)
class LocalFile:
    """A raw file on disk. `file_format` auto picks by name: .jsonl/.ndjson, .json, .parquet (+ .gz)."""

    path: Path
    file_format: str = "auto"

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def unit(self) -> str:
        return "line" if self.resolved_format() == "jsonl" else "row"

    def resolved_format(self) -> str:
        if self.path.is_file():
            lfs_pointer(self.path)  # before any reader misreads it as a broken gzip, JSON or Parquet file
        if self.file_format != "auto":
            return self.file_format
        name = self.path.name.lower().removesuffix(".gz")
        if name.endswith((".jsonl", ".ndjson")):
            return "jsonl"
        if name.endswith(".parquet"):
            return "parquet"
        if name.endswith(".json"):
            return "jsonl" if self._first_line_is_json() else "json"  # many ".json" files are JSON Lines
        raise RecordError(f"{self.path}: cannot tell the file type from its name; set file_format "
                          f"({', '.join(FILE_FORMATS[1:])})")

    def rows(self) -> Iterator[tuple[int, Any, str | None]]:
        if not self.path.is_file():
            raise RecordError(f"{self.path}: no such file")
        reader = {"jsonl": self._jsonl_rows, "json": self._json_rows, "parquet": self._parquet_rows}
        return reader[self.resolved_format()]()

    def _open(self):
        return jsonl.open_binary(self.path)

    def _first_line_is_json(self) -> bool:
        """True when the first non-blank line is a JSON object by itself: then the file is JSON Lines."""
        try:
            with self._open() as handle:
                for raw in handle:
                    if raw.strip():
                        return raw.lstrip()[:1] == b"{" and isinstance(jsonl.loads(raw), dict)
        except (OSError, ValueError, *_GZIP_ERRORS):
            return False
        return False

    def _read_all(self) -> bytes:
        try:
            with self._open() as handle:
                return handle.read()
        except _GZIP_ERRORS as exc:
            raise RecordError(f"{self.path}: not a readable gzip file ({exc})") from None

    def _jsonl_rows(self):
        line_no = 0
        try:
            for line_no, value, problem in jsonl.iter_json_lines(self.path):
                yield line_no, value, problem
        except _GZIP_ERRORS as exc:
            raise RecordError(f"{self.path}:{line_no + 1}: not a readable gzip stream ({exc})") from None

    def _json_rows(self):
        data = self._read_all()
        try:
            value = jsonl.loads(data)
        except ValueError as exc:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                line = data.count(b"\n", 0, bad.start) + 1
                raise RecordError(f"{self.path}:{line}: not valid UTF-8 ({bad.reason}); a JSON array file "
                                  "is parsed whole, so it cannot be quarantined line by line (use JSON Lines)") from None
            raise RecordError(f"{self.path}:{getattr(exc, 'lineno', '?')}: invalid JSON ({getattr(exc, 'msg', exc)} "
                              f"at column {getattr(exc, 'colno', '?')}); a JSON array file is parsed whole, so it "
                              "cannot be quarantined line by line (use JSON Lines)") from None
        if not isinstance(value, list):
            raise RecordError(f"{self.path}: expected a JSON array of rows (or JSON Lines), got a JSON "
                              f"{type(value).__name__}")
        for row_no, row in enumerate(value, 1):
            yield row_no, row, None

    def _parquet_rows(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            target = io.BytesIO(self._read_all()) if self.path.name.lower().endswith(".gz") else self.path
            parquet = pq.ParquetFile(target)
            row_no = 0
            for batch in parquet.iter_batches(batch_size=2048):
                for row in batch.to_pylist():
                    row_no += 1
                    yield row_no, row, None
        except (pa.ArrowException, OSError) as exc:
            raise RecordError(f"{self.path}: not a readable Parquet file ({exc})") from None


@dataclass(frozen=True)
class HubDataset:
    """A dataset repository on the Hugging Face hub at a pinned commit.

    `config` and `split` are load_dataset's `name` and `split`; `data_files` (optional glob
    patterns relative to the repository) both limit the download and select the files.
    """

    repo_id: str
    revision: str
    config: str | None = None
    split: str = "train"
    data_files: tuple[str, ...] = ()

    def __post_init__(self):
        if not is_commit(self.revision):
            raise RecordError(f"hub dataset {self.repo_id}: revision must be a 40-hex-digit commit (pinned, so "
                              f"reruns read the same data), got {self.revision!r}")

    @property
    def label(self) -> str:
        return f"hf://datasets/{self.repo_id}@{self.revision}" + (f"/{self.config}" if self.config else "") + \
            f" [{self.split}]"

    unit = "row"

    def snapshot(self) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        patterns = [*self.data_files, "README.md", "*.yaml"] if self.data_files else None
        try:
            return Path(snapshot_download(self.repo_id, repo_type="dataset", revision=self.revision,
                                          allow_patterns=patterns))
        except LocalEntryNotFoundError:
            raise RecordError(f"{self.label}: not in the local hub cache and downloads are off (HF_HUB_OFFLINE=1); "
                              "run once with HF_HUB_OFFLINE=0 to fetch this commit") from None
        except HfHubHTTPError as exc:
            raise RecordError(f"{self.label}: the hub refused the download ({exc})") from None

    def rows(self) -> Iterator[tuple[int, Any, str | None]]:
        import datasets

        folder = self.snapshot()
        datasets.disable_progress_bars()
        kwargs = {"data_files": list(self.data_files)} if self.data_files else {}
        try:
            dataset = datasets.load_dataset(str(folder), name=self.config, split=self.split, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure of the library is reported with the dataset's name
            raise RecordError(f"{self.label}: datasets.load_dataset failed: {type(exc).__name__}: {exc}") from None
        return self._iterate(dataset)

    @staticmethod
    def _iterate(dataset):
        row_no = 0
        for batch in dataset.iter(batch_size=1024):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns)):
                row_no += 1
                yield row_no, dict(zip(columns, values)), None
