"""YAML files read the way a person can act on: errors and keys located by file and line.

`load_yaml` raises ConfigError naming the file (and line for a syntax error); `key_line`
finds the line that sets a key path; `where` turns the config files of a run into the
`file:line: ` prefix of a message about a key, the last file that sets it winning (the
order in which Snakemake merges `--configfile` overlays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from prefalign.errors import ConfigError


def load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{at}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def key_line(path: Path, keys: Iterable[Any]) -> int | None:
    """1-based line where the key path `keys` is set in the YAML file `path`, or None when it is not."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                return None
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return None
    return line


def where(sources: Iterable[Path], keys: list) -> str:
    """`file:line: ` of the last of `sources` that sets the key path `keys`, or '' when none does.

    When no file sets the whole path (a key filled by a default, say), the line of its deepest
    parent that a file sets is named instead.
    """
    sources = [Path(s) for s in sources]
    for depth in range(len(keys), 0, -1):
        for source in reversed(sources):
            line = key_line(source, keys[:depth])
            if line is not None:
                return f"{source}:{line}: "
    return ""
