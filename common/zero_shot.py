"""The zero-shot baseline, kept as a name users know: `python -m common.zero_shot` is `python -m common.predict`.

    python -m common.zero_shot --config configs/gpt-neo-125m/zero_shot.yaml

See common/predict.py (generation only, with or without a trained run's `--adapter`).
"""

from __future__ import annotations

import sys

from common.predict import main

from .core.cli import run

if __name__ == "__main__":
    sys.exit(run(main))
