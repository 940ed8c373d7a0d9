"""Typed step settings that double as command-line flags.

Each step declares its settings as a dataclass deriving from `Settings`; every field has a
default and a help text (with units). The same names are used in three places, so a
reader can follow one key end to end: the config section (`learning_rate`), the CLI flag
(`--learning-rate`), and the step's metrics.json (`settings.learning_rate`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import types
import typing
from typing import Any

from prefalign.errors import ConfigError


def expect(ok: bool, key: str, expected: str, got: Any) -> None:
    """Raise ConfigError `key: expected <expected>, got <got>` unless `ok`: a settings class's check."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")


def _unwrap_optional(tp) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _scalar(kind, optional: bool):
    def parse(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


@dataclasses.dataclass
class Settings:
    """Base class: dataclass fields become `--kebab-case` flags with their help texts."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(f"{cls.__name__} (config keys of the same names, snake_case)")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            help_text = f"{f.metadata.get('help', '')} (default: {default!r})"
            tp, optional = _unwrap_optional(hints[f.name])
            if tp is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            elif typing.get_origin(tp) is list:
                (item,) = typing.get_args(tp)
                group.add_argument(flag, nargs="*", type=item, default=None, metavar=f.name.upper(), help=help_text)
            else:
                group.add_argument(flag, type=_scalar(tp, optional), default=None, help=help_text)

    @classmethod
    def from_args(cls, args: argparse.Namespace):
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name) is not None}
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def to_cli_flags(section: dict[str, Any], keys: typing.Iterable[str] | None = None) -> str:
    """Render a config section as the flags `Settings.add_arguments` parses (shell-quoted).

    None values are left out: every optional setting defaults to None, so a missing flag
    means the same thing.
    """
    parts: list[str] = []
    for key in keys if keys is not None else section:
        value = section[key]
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            parts.append(flag)
            parts.extend(shlex.quote(str(v)) for v in value)
        elif value is None:
            continue
        else:
            parts.extend([flag, shlex.quote(str(value))])
    return " ".join(parts)
