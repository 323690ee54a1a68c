"""Helpers shared by test modules (no test module imports another)."""

from __future__ import annotations

import traceback
from typing import Callable

from common.cli import run


def cli(main: Callable[[list[str]], object], argv: list[str], capsys) -> tuple[int, str]:
    """Run a script's `main` as `python script.py ARGV` would, in-process: through `common.cli.run`, with
    an exception that `run` lets through (a bug) printed with its traceback and exit code 1, as the
    interpreter does, and a SystemExit (argparse's --help) giving its code.

    Returns (exit code, everything written to stderr).

    Example:
        >>> cli(train_lora.main, ["--learning_rate", "0"], capsys)
        (2, 'error: --learning_rate 0.0: must be > 0\\n')
    """
    capsys.readouterr()
    try:
        code = run(main, list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    return code, capsys.readouterr().err
