"""Step `check`: a run audited, then held to its expected bounds (artifact evaluation).

First the run itself: every file against its manifest (edited, missing or stray artifacts are
refused) and, with --digests, every artifact against the published digests
(prefalign.provenance.published.audit); then each metric against the expected file's bounds
(prefalign.evaluation.check, whose table the audit heads). Exit statuses: those of the two parts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefalign.errors import ConfigError
from prefalign.evaluation import check as bounds
from prefalign.provenance import published


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bounds.add_arguments(parser)
    parser.add_argument("--manifest", type=Path, help="the run's manifest: the run is re-hashed against it first")
    parser.add_argument("--digests", type=Path, help="published digests (JSON, `make digests`) to compare the "
                                                     "run's artifacts with; needs --manifest")


def main(args: argparse.Namespace) -> None:
    if args.digests and not args.manifest:
        raise ConfigError("--digests: needs --manifest (the run's artifacts are read from it)")
    audit = "\n".join(published.audit(args.manifest, args.digests)) + "\n\n" if args.manifest else ""
    bounds.main(args, audit)
