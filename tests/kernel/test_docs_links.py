"""Every relative link of README.md and docs/*.md resolves: the file exists, and a `#anchor`
names a heading of the target as GitHub makes its anchors (lowercase; punctuation other than
`-` and `_` dropped; spaces to `-`; a repeated heading gets `-1`, `-2`, ...).

Links with a scheme (https:, mailto:) are not fetched: the tests run offline. Code (fenced
blocks, blocks indented by four spaces, `inline code`) is not read for links, as GitHub renders
none there."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str):
    """(line number, line) of the Markdown text GitHub renders as prose: code blocks left out."""
    fenced, indented, previous_blank = False, False, True
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        indented = line.startswith("    ") and (previous_blank or indented) and not fenced
        previous_blank = not line.strip()
        if not fenced and not indented:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match[1])
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return found


def broken_links(paths: list[Path], root: Path = REPO) -> list[str]:
    """'file:line: target: why' for every relative link of `paths` (files under `root`) that does not resolve."""
    problems = []
    for path in paths:
        for number, line in prose_lines(path.read_text()):
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if SCHEME.match(target):
                    continue
                file_part, _, anchor = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(root)}:{number}"
                if not resolved.exists():
                    problems.append(f"{where}: {target}: no such file {resolved}")
                elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
                    problems.append(f"{where}: {target}: no heading with anchor #{anchor} in {resolved.name}")
    return problems


def test_every_relative_link_of_the_docs_resolves():
    links = sum(len(LINK.findall(line)) for path in DOCS for _, line in prose_lines(path.read_text()))
    assert links > 40  # the check reads the links (54 when this test was written)
    assert broken_links(DOCS) == []


def test_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "usage.md").write_text("# Usage\n\n## Running on a GPU: `gpu.count`, FP8\n\n## Usage\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "See [GPU](docs/usage.md#running-on-a-gpu-gpucount-fp8), [again](docs/usage.md#usage-1),\n"
        "[top](#title) and [site](https://example.org/x#y). Code is not read: `[a](nowhere.md)`\n\n"
        "    [b](nowhere.md)\n\n# Title\n\n"
        "Broken: [a](docs/missing.md), [b](docs/usage.md#running-on-a-cpu) and [c](#no-such-heading).\n")
    assert broken_links([readme, tmp_path / "docs" / "usage.md"], tmp_path) == [
        f"README.md:8: docs/missing.md: no such file {tmp_path / 'docs' / 'missing.md'}",
        "README.md:8: docs/usage.md#running-on-a-cpu: no heading with anchor #running-on-a-cpu in usage.md",
        "README.md:8: #no-such-heading: no heading with anchor #no-such-heading in README.md",
    ]
