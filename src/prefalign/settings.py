"""Typed step settings that double as command-line flags.

Each step declares its settings as a dataclass deriving from `Settings`; every field has a
default and a help text (with units). The same names are used in three places, so a
reader can follow one key end to end: the config key (`dpo.learning_rate`), the CLI flag
(`--learning-rate`), and the step's metrics.json (`settings.learning_rate`).

Where a field's value comes from is declared once, on the field:
  - by default the key `<SECTION>.<field name>` of the class's config section;
  - metadata `key`: another key (`dpo.beta` for evaluation's beta, `seed` at the top level);
  - metadata `job`: set per job by the workflow (which model an evaluation job scores);
  - metadata `derived`: computed from the keys it names (a split's caps from every dataset's cap).
prefalign.config.steps builds every step's settings from these declarations alone, and a
test holds every field's default equal to its key's default in the schema. `--help` shows
that default and, where the default preset sets the key, the preset's value: what a default
run uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import types
import typing
from typing import Any

from prefalign import presets
from prefalign.errors import ConfigError


def expect(ok: bool, key: str, expected: str, got: Any) -> None:
    """Raise ConfigError `key: expected <expected>, got <got>` unless `ok`: a settings class's check."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")


_UNSET = object()


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


def seed_field(what: str) -> Any:
    """The run's `seed` (a top-level config key) as a step's field; `what` it seeds, for the help."""
    return dataclasses.field(default=1234, metadata={"key": "seed", "help": f"random seed ({what})"})


def threads_field(what: str = "torch intra-op threads (part of the result on CPU)") -> Any:
    """The run's `threads` (a top-level config key) as a step's field; `what` they run, for the help."""
    return dataclasses.field(default=2, metadata={"key": "threads", "help": what})


@dataclasses.dataclass
class Settings:
    """Base class: dataclass fields become `--kebab-case` flags with their help texts."""

    SECTION: typing.ClassVar[str | None] = None  # the config section of the fields (datasets.*: each dataset's)

    @classmethod
    def config_key(cls, f: dataclasses.Field) -> str | None:
        """The config key field `f` is read from (`*` for the dataset's name), or None for job and derived fields."""
        if f.metadata.get("job") or f.metadata.get("derived"):
            return None
        return f.metadata.get("key") or (f"{cls.SECTION}.{f.name}" if cls.SECTION else None)

    @classmethod
    def default_of(cls, f: dataclasses.Field):
        return f.default if f.default is not dataclasses.MISSING else f.default_factory()

    @classmethod
    def help_for(cls, f: dataclasses.Field) -> str:
        """The field's help, its default and, where the default preset sets the key, the preset's value."""
        text = f"{f.metadata.get('help', '')} (default: {cls.default_of(f)!r}"
        key = cls.config_key(f)
        if key is not None and "." in key:
            section, name = key.split(".", 1)
            preset = presets.value_of(presets.DEFAULT, section, name, _UNSET)
            if preset is not _UNSET:
                text += f"; the default preset {presets.DEFAULT} sets {preset!r}"
        if key is not None:
            text += f"; config key {key}"
        elif f.metadata.get("job"):
            text += "; set per job by the workflow"
        else:
            text += f"; the workflow derives it from {f.metadata['derived']}"
        return (text + ")").replace("%", "%%")  # argparse formats help with %

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(f"{cls.__name__} (flags are config keys, snake_case -> --kebab-case)")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            help_text = cls.help_for(f)
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
