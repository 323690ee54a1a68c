"""Files written whole or not at all: a temporary name beside the target, then an atomic rename.

A crash mid-write never leaves a half-written file under the final name, and an older complete file
stays in place until the new one is whole.

Example:
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_json(Path(tmp, "lora", "run.json"), {"method": "lora"})      # creates the folder
    ...     sorted(p.name for p in Path(tmp, "lora").iterdir()), folder_size_bytes(tmp)   # no temporary file left
    (['run.json'], 23)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it over `path` atomically.

    On any error the temporary file is removed and an existing `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp_name)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp creates 0600; results are ordinary readable files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and an atomic rename."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def folder_size_bytes(path: str | Path) -> int:
    """Bytes of all files under `path` (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
