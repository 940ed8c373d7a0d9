"""Step `export`: a checkpoint laid out for upload, its model card as README.md.

`prefalign export --model results/dpo/model --card results/cards/dpo/README.md --manifest
results/manifest.json --out results/export/dpo` first checks every file of the model folder
and the card against the manifest (a checkpoint that no longer is what the run made is not
exported: StaleError naming the file), then writes the folder: the weights, config and
tokenizer files (hard links where the file system allows, else copies: a 15 GB checkpoint
costs no space twice), and README.md, the card with the manifest's sha256 filled in. The
folder is what `huggingface-cli upload <repo> results/export/dpo` (or
`HfApi().upload_folder`) sends; nothing is uploaded here.

It runs after the manifest (rules/publish.smk, target `export`), so the export is outside
the manifest it cites; PEFT's template README.md in an adapter folder is replaced by the card.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from prefalign.errors import ConfigError, StaleError
from prefalign.hashing import sha256_file
from prefalign.jsonl import write_text
from prefalign.publish.card import MANIFEST_MARK

SKIPPED = {".snakemake_timestamp", "README.md"}


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def check_against(manifest: dict, files: list[Path]) -> None:
    """StaleError unless every file is in the manifest with its recorded sha256."""
    artifacts = manifest.get("artifacts", {})
    problems = []
    for file in files:
        entry = artifacts.get(file.as_posix())
        if entry is None:
            problems.append(f"{file}: not in the manifest")
        elif sha256_file(file) != entry["sha256"]:
            problems.append(f"{file}: sha256 differs from the manifest (made by {entry.get('job')})")
    if problems:
        raise StaleError("not exported, the files are not what the run recorded:\n  " + "\n  ".join(problems)
                         + "\n  `prefalign verify results/manifest.json` lists what to rebuild")


def export(model: Path, card: Path, manifest_path: Path, out: Path) -> list[Path]:
    try:
        manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{manifest_path}: cannot read the manifest ({exc})") from None
    if not Path(model).is_dir():
        raise ConfigError(f"{model}: not a model folder")
    files = sorted(p for p in Path(model).rglob("*") if p.is_file() and p.name not in SKIPPED)
    check_against(manifest, files + [Path(card)])
    text = Path(card).read_text(encoding="utf-8")
    if MANIFEST_MARK not in text:
        raise ConfigError(f"{card}: not a prefalign model card (no manifest line to complete)")
    text = text.replace(MANIFEST_MARK, f"(sha256 `{sha256_file(Path(manifest_path))}`)")
    if out.exists():
        shutil.rmtree(out)
    written = []
    for file in files:
        target = out / file.relative_to(model)
        _link_or_copy(file, target)
        written.append(target)
    write_text(out / "README.md", text)
    return written + [out / "README.md"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the model (or adapter) folder to export")
    parser.add_argument("--card", type=Path, required=True, help="its model card (prefalign card)")
    parser.add_argument("--manifest", type=Path, required=True, help="the run's manifest: files are checked against it")
    parser.add_argument("--out", type=Path, required=True, help="output folder: weights, tokenizer, README.md")


def main(args: argparse.Namespace) -> None:
    written = export(args.model, args.card, args.manifest, args.out)
    print(f"export: {len(written)} files -> {args.out} (ready to upload)")
