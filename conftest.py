"""The docstring examples of `common/` as doctests, in every run of the suite (STYLE.md item 18).

Collected here rather than with `--doctest-modules`, which would also collect the examples in `tests/`, the
suite's own helpers. The examples run as the tests do: offline, on a fresh HF_HOME with no token, so none
reads the user's cache or reaches the Hub (tests/conftest.py, loaded after this file, sets its own HF_HOME).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from _pytest.doctest import DoctestModule

LIBRARY = Path(__file__).resolve().parent / "common"

os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="pytest-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE"):
    os.environ.pop(_name, None)
os.environ["HF_HUB_OFFLINE"] = "1"  # tests that talk to the test Hub turn it off themselves (tests/helpers.py)


def pytest_collect_file(file_path: Path, parent):
    """Each module of `common/` as a DoctestModule (pytest's own, as `--doctest-modules` would make it)."""
    if file_path.suffix == ".py" and LIBRARY in file_path.parents and not parent.config.option.doctestmodules:
        return DoctestModule.from_parent(parent, path=file_path)
    return None
