"""Local paths in a config: taken from the folder of the config file that sets them, and checked.

A config is what runs, wherever it runs from: `snakemake --directory runs/a --configfile
my.yaml` (a run folder per config, side by side) and `prefalign config check my.yaml` must
read the same raw file. So a relative path in a config file is taken from that file's folder
(the last file that sets the key, as the files overlay each other), never from the folder a
command happens to run in; a value set on the command line (`--config`) is taken from the
working directory. Resolved paths are written relative to the working directory when they
lie below it (the manifest then stays portable), else absolute.

    key                    a path when                                must exist
    datasets.<name>.path   source is local                            as a file
    ab.ratings             set                                        as a file
    model.name_or_path     source is pretrained and a folder of that  (else it is a hub id)
                           name is next to the config file
    data.tokenizer         a folder of that name is there             (else bytes/auto/hub id)
    eval.reward_model      a folder of that name is there             (else a hub id)

`resolve_paths` rewrites the config in place and returns every problem as
`file:line: key: ...` (a missing raw file, a folder given as a file).
"""

from __future__ import annotations

import os
from pathlib import Path

from prefalign.yamlio import key_line


def setting_file(sources: list[Path], keys: list) -> Path | None:
    """The last of `sources` that sets the key path `keys` (the one whose value won), or None."""
    for source in reversed(sources):
        if key_line(source, keys) is not None:
            return source
    return None


def located(sources: list[Path], keys: list) -> str:
    source = setting_file(sources, keys)
    return f"{source}:{key_line(source, keys)}: " if source else ""


def shown(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it, else absolute."""
    path = Path(os.path.normpath(path))
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return str(path)


def anchored(value: str, sources: list[Path], keys: list, cwd: Path) -> Path:
    """The absolute path a relative `value` names: from the setting file's folder, else from `cwd`."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    source = setting_file(sources, keys)
    base = Path(source).resolve().parent if source else cwd
    return base / path


def resolve_paths(config: dict, sources: list[Path], cwd: Path | None = None) -> list[str]:
    """Anchor every local path of a resolved config (in place); the problems found, located."""
    sources = [Path(s) for s in sources]
    cwd = Path(cwd or os.getcwd()).resolve()
    problems = []

    def must_be_file(keys: list, value: str, what: str) -> str:
        path = anchored(value, sources, keys, cwd)
        key = ".".join(map(str, keys))
        if path.is_dir():
            problems.append(f"{located(sources, keys)}{key}: expected {what} file, got the folder {path}")
        elif not path.is_file():
            hint = " (a relative path is taken from the folder of the config file that sets it)" \
                if not Path(value).is_absolute() else ""
            problems.append(f"{located(sources, keys)}{key}: no such file: {path}{hint}")
        return shown(path, cwd)

    def folder_if_there(keys: list, value: str | None) -> str | None:
        if not value or Path(value).is_absolute():
            return value
        path = anchored(value, sources, keys, cwd)
        return shown(path, cwd) if path.is_dir() else value

    for name, dataset in config.get("datasets", {}).items():
        if isinstance(dataset, dict) and dataset.get("source") == "local" and dataset.get("path"):
            dataset["path"] = must_be_file(["datasets", name, "path"], dataset["path"], "a raw data")
    if config.get("ab", {}).get("ratings"):
        config["ab"]["ratings"] = must_be_file(["ab", "ratings"], config["ab"]["ratings"], "a ratings CSV")
    model = config.get("model", {})
    if model.get("source") == "pretrained":
        model["name_or_path"] = folder_if_there(["model", "name_or_path"], model.get("name_or_path"))
    if "data" in config and config["data"].get("tokenizer") not in (None, "auto", "bytes"):
        config["data"]["tokenizer"] = folder_if_there(["data", "tokenizer"], config["data"]["tokenizer"])
    if config.get("eval", {}).get("reward_model"):
        config["eval"]["reward_model"] = folder_if_there(["eval", "reward_model"], config["eval"]["reward_model"])
    return problems
