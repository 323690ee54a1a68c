"""GPU readiness in one command: the three methods in bf16 and fp16, then the benchmark, one table.

    python benchmarks/gpu_check.py                 # on a CUDA machine with requirements.txt installed
    python benchmarks/gpu_check.py --skip_benchmark --steps 2   # quicker

Needs no network: the base model is GPT-Neo-125M's architecture with random weights (written once to a
temporary folder with the tiny test tokenizer, whose 512 ids all lie inside GPT-Neo's vocabulary) and the
data is the bundled sample (`data/sample/`). For each of bf16 and fp16 and each method it runs the
training script as a user would (`python train_<method>.py`, its own process) for `--steps` optimizer
steps at the seed's lengths (512 article + 128 summary tokens), with ROUGE generation at the end of
training and test generation, and reads back run.json: loss finite, train and generation tokens/s, peak
CUDA memory. Then `benchmarks/benchmark.py --model gpt-neo-125m --device cuda --dtype bf16` (ours vs stock
Hugging Face code and the naive loop, MFU-style fraction of the measured matmul peak, projected hours for the
seed's runs).
Budget: under 8 minutes on one H100 (most of it is process start-up and the benchmark).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRIPTS = {"lora": "train_lora.py", "soft_prompt": "train_soft_prompt.py", "finetune": "train_finetune.py"}
SAMPLE = ROOT / "data" / "sample"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="Optimizer steps per method and dtype.")
    parser.add_argument("--batch_size", type=int, default=8, help="Training examples per step.")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    parser.add_argument("--skip_benchmark", action="store_true", help="Only the training scripts.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"),
                        help="Where the table's figures are written as JSON.")
    return parser


def write_model(folder: Path) -> Path:
    """GPT-Neo-125M's architecture, random weights (seed 0), with the tiny offline tokenizer."""
    import torch
    from transformers import GPTNeoForCausalLM

    from common.tiny_model import build_tokenizer, gpt_neo_125m_config

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = gpt_neo_125m_config()
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    GPTNeoForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_script(method: str, dtype: str, model: Path, out_dir: Path, args) -> dict:
    """One training script run; returns its run.json plus the process wall time."""
    flags = ["--model_name_or_path", str(model), "--train_file", str(SAMPLE / "train.jsonl"),
             "--validation_file", str(SAMPLE / "validation.jsonl"), "--test_file", str(SAMPLE / "test.jsonl"),
             "--output_dir", str(out_dir), "--max_steps", str(args.steps), "--per_device_train_batch_size",
             str(args.batch_size), "--max_source_length", "512", "--max_target_length", "128",
             "--max_new_tokens", "64", "--generation_batch_size", "24", "--num_eval_generate", "8",
             "--eval_strategy", "steps", "--eval_steps", str(args.steps), "--save_strategy", "no",
             "--logging_steps", "1", "--report_to", "none", f"--{dtype}", "true"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, SCRIPTS[method], *flags], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed", "wall_s": wall}
    run = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
    return {**run, "wall_s": wall}


def row(method: str, dtype: str, run: dict) -> dict:
    if "error" in run:
        return {"method": method, "dtype": dtype, "ok": False, "error": run["error"], "wall_s": run["wall_s"]}
    losses = [entry["loss"] for entry in run["log_history"] if "loss" in entry]
    return {"method": method, "dtype": dtype, "ok": bool(losses) and all(math.isfinite(x) for x in losses),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "train_tokens_per_s": run.get("train_tokens_per_s"), "gen_tokens_per_s": run.get("generation_tokens_per_s"),
            "peak_cuda_mib": run.get("peak_memory", {}).get("peak_cuda_allocated_mib"),
            "test_rougeLsum": run.get("test_rouge", {}).get("rougeLsum"), "wall_s": run["wall_s"]}


def print_table(rows: list[dict], device: str) -> None:
    print(f"\nGPU check on {device} (GPT-Neo-125M architecture, random weights, seed lengths 512 + 128)")
    print("| method | dtype | ok | loss first -> last | train tok/s | gen tok/s | peak CUDA MiB | process s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | {r['dtype']} | FAILED: {r['error'][:120]} | | | | | {r['wall_s']:.0f} |")
            continue
        print(f"| {r['method']} | {r['dtype']} | {'yes' if r['ok'] else 'NO'} | {r['first_loss']:.3f} -> "
              f"{r['last_loss']:.3f} | {r['train_tokens_per_s'] or 0:.0f} | {r['gen_tokens_per_s'] or 0:.0f} | "
              f"{r['peak_cuda_mib'] or 0:.0f} | {r['wall_s']:.0f} |")


def main(argv: list[str] | None = None) -> list[dict]:
    args = make_parser().parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device visible; this check is for a GPU machine")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.cuda.get_device_name()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "gpt-neo-125m-random")
        for dtype in args.dtypes:
            for method in SCRIPTS:
                rows.append(row(method, dtype, run_script(method, dtype, model, Path(tmp) / f"{method}-{dtype}", args)))
                print(json.dumps(rows[-1]), flush=True)
        print_table(rows, device)
        if not args.skip_benchmark:
            subprocess.run([sys.executable, "benchmarks/benchmark.py", "--model", "gpt-neo-125m", "--device", "cuda",
                            "--dtype", "bf16", "--tokenizer", str(model)], cwd=ROOT, check=False)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": device, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print_table(rows, device)
    return rows


if __name__ == "__main__":
    main()
