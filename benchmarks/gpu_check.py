"""GPU readiness in one command: the three methods in bf16 and fp16, FSDP on 2+ GPUs, the benchmark; one table.

    python benchmarks/gpu_check.py                 # on a CUDA machine with requirements.txt installed
    python benchmarks/gpu_check.py --skip_benchmark --steps 2   # quicker

Needs no network: the base model is GPT-Neo-125M's architecture with random weights (written once to a
temporary folder with the tiny test tokenizer, whose 512 ids all lie inside GPT-Neo's vocabulary) and the
data is the bundled sample (`data/sample/`). For each of bf16 and fp16 and each method it runs the
training script as a user would (`python train_<method>.py`, its own process, on one GPU alone:
CUDA_VISIBLE_DEVICES=0, or the first id yours names, so the Trainer cannot use nn.DataParallel) for `--steps` optimizer
steps at the seed's lengths (512 article + 128 summary tokens), with ROUGE generation at the end of training
and test generation, and reads back run.json: loss finite, training and evaluation seconds, train tokens/s
(train_tokens / train_time_s: optimizer steps only, not the evaluations), generation tokens/s and precision,
peak CUDA memory. Generation tokens/s is run.json's `generated_tokens` (the new token ids generated, EOS
excluded, counted before decoding) over `generation_wall_time_s`: the random model's ids mostly lie outside
the tiny tokenizer's 512 and decode to nothing, so a count of re-tokenized text would read near zero.

With two or more GPUs visible it also runs the README's FSDP check once (LoRA on the tiny model, FSDP2 over
2 processes; `fsdp_command`). Then `benchmarks/benchmark.py --model gpt-neo-125m --device cuda --dtype bf16`
(ours vs stock Hugging Face code and the naive loop at the GPU presets' batch sizes, MFU-style fraction of the
measured matmul peak and of the card's dense bf16 spec, projected hours for the seed's runs), which prints
its own report as it runs.

Every run has a timeout (--timeout_s; the benchmark gets what is left) and the whole check a budget
(--budget_s, default 480 s = 8 minutes): each run's timeout shrinks to what is left of it, a run past its
timeout is stopped with its whole process group and reported as a failed row ("timed out after N s"), and a
run with no time left is not started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRIPTS = {"lora": "train_lora.py", "soft_prompt": "train_soft_prompt.py", "finetune": "train_finetune.py"}
SAMPLE = ROOT / "data" / "sample"
FSDP_ROW = "lora, FSDP on 2 GPUs"
STOP_GRACE_S = 10  # after SIGTERM, before SIGKILL: torchrun forwards SIGTERM to its workers


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="Optimizer steps per method and dtype.")
    parser.add_argument("--batch_size", type=int, default=8, help="Training examples per step.")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    parser.add_argument("--skip_benchmark", action="store_true", help="Only the training scripts.")
    parser.add_argument("--timeout_s", type=float, default=150, help="Most seconds one training run may take "
                        "(less when less of --budget_s is left).")
    parser.add_argument("--budget_s", type=float, default=480, help="Most seconds the whole check may take; "
                        "each run's timeout shrinks to what is left, and the benchmark gets the rest.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"),
                        help="Where the table's figures are written as JSON.")
    return parser


class Budget:
    """Seconds left of the whole check's budget, counted from its creation."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def timeout(self, limit: float = math.inf) -> float:
        """`limit`, or what is left of the budget when that is less (0 or below: nothing left)."""
        return min(limit, self.deadline - time.monotonic())


def write_model(folder: Path) -> Path:
    """GPT-Neo-125M's architecture, random weights (seed 0), with the tiny offline tokenizer."""
    import torch
    from transformers import GPTNeoForCausalLM

    from common.models.tiny import build_tokenizer, gpt_neo_125m_config

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = gpt_neo_125m_config()
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    GPTNeoForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def offline_env() -> dict[str, str]:
    """This process's environment with the Hub offline (the check needs no network)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def one_gpu_env() -> dict[str, str]:
    """The environment of the single-GPU runs: one GPU visible, so the Trainer cannot spread the model over the
    others with nn.DataParallel. CUDA_VISIBLE_DEVICES=0, or the first of the GPUs it already names (the GPU
    this process calls cuda:0)."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    return {**offline_env(), "CUDA_VISIBLE_DEVICES": first}


def run_command(command: list[str], env: dict[str, str], timeout: float, stdout=subprocess.DEVNULL) -> dict:
    """Run `command` from the project root in a process group of its own for at most `timeout` seconds.

    Returns {"wall_s"} when it exits with 0, else {"error", "wall_s"}: its last stderr line, "timed out after
    N s" (the group is stopped: `stop_group`), or "not run: ..." when `timeout` leaves no time."""
    if timeout <= 0:
        return {"error": "not run: no time left of --budget_s", "wall_s": 0.0}
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(process)
            return {"error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    if process.returncode != 0:
        lines = stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {process.returncode}", "wall_s": wall}
    return {"wall_s": wall}


def stop_group(process: subprocess.Popen) -> None:
    """Stop a timed-out run and everything it started: SIGTERM to its process group (torchrun passes it on to
    its workers, which run in sessions of their own), SIGKILL to the group if it is still there after
    STOP_GRACE_S seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.communicate(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def read_run(out_dir: Path, done: dict) -> dict:
    """A finished run's run.json with the process wall time added, or `done` (its error) when it failed."""
    if "error" in done:
        return done
    return {**json.loads((out_dir / "run.json").read_text(encoding="utf-8")), "wall_s": done["wall_s"]}


def training_flags(dtype: str, model: Path, out_dir: Path, args) -> list[str]:
    """A training script's flags for the check: the sample data, --steps steps at the seed's lengths, one
    evaluation (with its ROUGE generation) at the end."""
    return ["--model_name_or_path", str(model), "--train_file", str(SAMPLE / "train.jsonl"),
            "--validation_file", str(SAMPLE / "validation.jsonl"), "--test_file", str(SAMPLE / "test.jsonl"),
            "--output_dir", str(out_dir), "--max_steps", str(args.steps), "--per_device_train_batch_size",
            str(args.batch_size), "--max_source_length", "512", "--max_target_length", "128",
            "--max_new_tokens", "64", "--generation_batch_size", "24", "--num_eval_generate", "8",
            "--eval_strategy", "steps", "--eval_steps", str(args.steps), "--save_strategy", "no",
            "--logging_steps", "1", "--report_to", "none", f"--{dtype}", "true"]


def run_script(method: str, dtype: str, model: Path, out_dir: Path, args, timeout: float) -> dict:
    """One training script run on GPU 0 alone; its run.json plus the process wall time, or its error."""
    command = [sys.executable, SCRIPTS[method], *training_flags(dtype, model, out_dir, args)]
    return read_run(out_dir, run_command(command, one_gpu_env(), timeout))


def fsdp_command(model: Path, out_dir: Path) -> list[str]:
    """The README's FSDP check (LoRA, configs/accelerate/fsdp.yaml, 2 processes), with the tiny model and the
    output folder of this check instead of .cache/tiny-gpt-neo and runs/fsdp_check."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/fsdp.yaml",
            "--num_processes", "2", "train_lora.py", "--config", "configs/tiny/lora.yaml",
            "--output_dir", str(out_dir), "--num_eval_generate", "3", "--save_strategy", "steps", "--save_steps", "2",
            "--model_name_or_path", str(model)]


def fsdp_check(tmp: Path, timeout: float) -> dict:
    """The FSDP check as a row: the tiny model written to `tmp`, `fsdp_command` on the GPUs visible."""
    from common.models.tiny import write_tiny_model

    out_dir = tmp / "fsdp_check"
    command = fsdp_command(write_tiny_model(tmp / "tiny-gpt-neo"), out_dir)
    return row(FSDP_ROW, "bf16", read_run(out_dir, run_command(command, offline_env(), timeout)))


def benchmark_row(model: Path, timeout: float) -> dict:
    """benchmarks/benchmark.py on GPU 0 (its report printed as it runs) as a row: ok, or its error."""
    command = [sys.executable, "benchmarks/benchmark.py", "--model", "gpt-neo-125m", "--device", "cuda",
               "--dtype", "bf16", "--tokenizer", str(model)]
    done = run_command(command, one_gpu_env(), timeout, stdout=None)
    return row("benchmark.py", "bf16", done) if "error" in done else \
        {"method": "benchmark.py", "dtype": "bf16", "ok": True, "wall_s": done["wall_s"]}


def rate(count, seconds) -> float | None:
    """count / seconds, None when either is missing or the time is 0."""
    return count / seconds if count is not None and seconds else None


def row(method: str, dtype: str, run: dict) -> dict:
    """A table row from a run's run.json (or its error). Train tokens/s over training time only (run.json's
    `train_time_s`, the optimizer steps); generation tokens/s from `generated_tokens`, the raw new token ids."""
    if "error" in run:
        return {"method": method, "dtype": dtype, "ok": False, "error": run["error"], "wall_s": run["wall_s"]}
    losses = [entry["loss"] for entry in run["log_history"] if "loss" in entry]
    return {"method": method, "dtype": dtype, "ok": bool(losses) and all(math.isfinite(x) for x in losses),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "train_time_s": run.get("train_time_s"), "eval_time_s": run.get("eval_time_s"),
            "train_tokens_per_s": rate(run.get("train_tokens"), run.get("train_time_s")),
            "gen_tokens_per_s": rate(run.get("generated_tokens"), run.get("generation_wall_time_s")),
            "generation_precision": run.get("generation_precision"),
            "peak_cuda_mib": run.get("peak_memory", {}).get("peak_cuda_allocated_mib"),
            "test_rougeLsum": run.get("test_rouge", {}).get("rougeLsum"), "wall_s": run["wall_s"]}


def cell(value, spec: str = "") -> str:
    """A table cell: the value formatted with `spec`, "-" when there is none."""
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], device: str) -> None:
    print(f"\nGPU check on {device} (GPT-Neo-125M architecture, random weights, seed lengths 512 + 128)")
    print("| run | dtype | ok | loss first -> last | train s | eval s | train tok/s | gen tok/s | gen precision | "
          "peak CUDA MiB | process s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | {r['dtype']} | FAILED: {r['error'][:120]} | | | | | | | | {r['wall_s']:.0f} |")
            continue
        print(f"| {r['method']} | {r['dtype']} | {'yes' if r['ok'] else 'NO'} | {cell(r.get('first_loss'), '.3f')} -> "
              f"{cell(r.get('last_loss'), '.3f')} | {cell(r.get('train_time_s'), '.1f')} | "
              f"{cell(r.get('eval_time_s'), '.1f')} | {cell(r.get('train_tokens_per_s'), '.0f')} | "
              f"{cell(r.get('gen_tokens_per_s'), '.0f')} | {cell(r.get('generation_precision'))} | "
              f"{cell(r.get('peak_cuda_mib'), '.0f')} | {r['wall_s']:.0f} |")


def check(args, device: str, gpu_count: int) -> list[dict]:
    """Every run of the check within --budget_s; writes the rows to --out and prints the table once."""
    budget = Budget(args.budget_s)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "gpt-neo-125m-random")
        for dtype in args.dtypes:
            for method in SCRIPTS:
                run = run_script(method, dtype, model, Path(tmp) / f"{method}-{dtype}", args,
                                 budget.timeout(args.timeout_s))
                rows.append(row(method, dtype, run))
                print(json.dumps(rows[-1]), flush=True)
        if gpu_count >= 2:
            rows.append(fsdp_check(Path(tmp), budget.timeout(args.timeout_s)))
        if not args.skip_benchmark:
            rows.append(benchmark_row(model, budget.timeout()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": device, "gpus": gpu_count, "budget_s": args.budget_s,
                                          "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print_table(rows, device)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = make_parser().parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device visible; this check is for a GPU machine")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return check(args, torch.cuda.get_device_name(), torch.cuda.device_count())


if __name__ == "__main__":
    main()
