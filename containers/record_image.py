"""Record a container image in a workflow config: set `containers.<name>`, keeping the file's
comments and layout (containers/build.sh calls it after building an image).

    python3 containers/record_image.py config.yaml cpu containers/prefalign-cpu-<sha256>.sif

The value must be what schemas/config.schema.yaml accepts there: a local .sif file, or a
registry image pinned by digest (docker://name@sha256:<64 hex>). Only the standard library.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# The same pattern as $defs.container_image in schemas/config.schema.yaml (tests check they agree).
IMAGE = re.compile(r"^([^:@\s]+\.sif|(docker|oras)://[^@\s]+@sha256:[0-9a-f]{64})$")


def record(text: str, name: str, value: str) -> str:
    """`text` (a YAML config) with containers.<name> set to `value`."""
    if not IMAGE.match(value):
        raise ValueError(f"containers.{name}: {value!r} is neither a .sif file nor an image pinned by sha256 digest")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if re.match(r"containers:\s*(#.*)?$", line)), None)
    if start is None:
        return "".join(lines) + f"\ncontainers:\n  {name}: {value}\n"
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines))
    for i in range(start + 1, end):
        match = re.match(rf"(\s+{re.escape(name)}:[ \t]*)([^#\s]*)(.*\n)", lines[i])
        if match:
            lines[i] = match.group(1) + value + match.group(3)
            return "".join(lines)
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # insert after the section's last entry, not after the blank lines that follow it
    lines.insert(end, f"  {name}: {value}\n")
    return "".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, name, value = Path(argv[0]), argv[1], argv[2]
    try:
        path.write_text(record(path.read_text(encoding="utf-8"), name, value), encoding="utf-8")
    except (OSError, ValueError) as error:
        print(f"record_image.py: {path}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
