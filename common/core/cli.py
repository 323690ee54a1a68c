"""User errors read like a CLI's: one line `error: ...` on stderr and a non-zero exit, no traceback.

A `UserError` is something the user can fix (a bad flag or value, a bad data file, an unreachable
Hub); its message names the file, row or flag and the fix. Any other exception is a bug and keeps its
traceback. `--debug` on the command line, or PEFT_SUM_DEBUG=1, shows the traceback of user errors too,
for bug reports.

Exit codes: 2 for usage errors (`ConfigError`: flags, YAML values), 1 for the others. Parsers built
with `OneLineUsageErrors` raise a `ConfigError` for argparse's own errors (unknown flag, a value that
is not an int) instead of printing the whole usage, which for the training scripts is 130 lines.

Example:
    >>> def main(argv): raise ConfigError("--learning_rate 0: must be > 0")
    >>> run(main, ["--learning_rate", "0"])     # prints "error: --learning_rate 0: must be > 0"
    2
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any, Callable

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "PEFT_SUM_DEBUG"


class UserError(Exception):
    """An error the user can fix; the message says what and how. Exit code 1."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A bad flag or configuration value (usage error). Exit code 2."""

    exit_code = 2


class DataError(UserError, ValueError):
    """A data file or split that cannot be used; the message names the file and row. Exit code 1."""


class OneLineUsageErrors:
    """Mixin for argparse parsers: a usage error raises `ConfigError` (one `error:` line, exit 2 through
    `run`) instead of printing the usage and exiting. `--help` still prints the full help.

    Example:
        >>> class Parser(OneLineUsageErrors, argparse.ArgumentParser): pass
        >>> Parser().parse_args(["--nope"])
        Traceback (most recent call last):
        common.core.cli.ConfigError: unrecognized arguments: --nope (see --help)
    """

    def error(self, message: str):
        raise ConfigError(f"{message} (see --help)")


class ArgumentParser(OneLineUsageErrors, argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors are `ConfigError`s."""


def debug_requested(argv: list[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def run(main: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    """Call `main(argv)` (argv without `--debug`); a UserError becomes one `error:` line and its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    try:
        main([a for a in argv if a != DEBUG_FLAG])
    except UserError as error:
        if debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr, flush=True)
        return error.exit_code
    return 0


def require(ok: bool, flag: str, value: Any, accepted: str) -> None:
    """Raise a ConfigError naming the flag, its value and what is accepted, unless `ok`.

    Example:
        >>> require(0 >= 1, "r", 0, "must be >= 1")
        Traceback (most recent call last):
        common.core.cli.ConfigError: --r 0: must be >= 1
    """
    if not ok:
        raise ConfigError(f"--{flag} {value}: {accepted}")


def require_at_least(config: Any, minimum: int, *flags: str) -> None:
    """Each named field of `config` is >= minimum; None (an optional "all") passes.

    Example:
        >>> require_at_least(argparse.Namespace(num_beams=1, max_train_samples=None), 1, "num_beams",
        ...                  "max_train_samples")            # None (all samples) passes
        >>> require_at_least(argparse.Namespace(num_beams=0), 1, "num_beams")
        Traceback (most recent call last):
        common.core.cli.ConfigError: --num_beams 0: must be >= 1
    """
    for flag in flags:
        value = getattr(config, flag)
        require(value is None or value >= minimum, flag, value, f"must be >= {minimum}")
