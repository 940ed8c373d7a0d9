"""The errors prefalign raises on purpose, one class per kind, each with its own exit status.

    ConfigError      a setting or a file named by the config cannot be used       exit 2
    RecordError      an input record or file cannot be read                        exit 3
    TrainingError    training went wrong (diverged: NaN or a loss spike)           exit 4
    StaleError       an artifact is no longer what its job made (provenance)      exit 5
    AccountingError  the record counts do not add up: a bug, never bad input       exit 70

Every message names what to fix: the key (and file:line where it was set), or the file,
line and field of a record. `prefalign` (cli.py) prints `prefalign <step>: <kind>: <message>`
and exits with the kind's status, never with a traceback.
"""

from __future__ import annotations


class PrefalignError(Exception):
    """Base of the errors above; `kind` and `exit_status` say how the CLI reports it."""

    kind = "error"
    exit_status = 1


class ConfigError(PrefalignError, ValueError):
    """A setting has a value the step cannot use; the message names the key."""

    kind = "config error"
    exit_status = 2


class RecordError(PrefalignError, ValueError):
    """An input record or file cannot be read; the message names file, line and key."""

    kind = "input error"
    exit_status = 3


class TrainingError(PrefalignError, RuntimeError):
    """Training failed in a way the settings must fix (diverged); the message says what to change."""

    kind = "training failed"
    exit_status = 4


class StaleError(PrefalignError):
    """A run's files no longer match its record; the message names them and the --forcerun that repairs them."""

    kind = "stale artifacts"
    exit_status = 5


class AccountingError(PrefalignError, AssertionError):
    """The counts do not add up: a record was lost or counted twice (a bug, never bad input)."""

    kind = "internal error (please report)"
    exit_status = 70
