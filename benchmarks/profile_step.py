"""Where a training step's time goes: torch.profiler over the project's own step (the benchmark's `ours` path),
grouped by operator, with each group's share of the step.

    HF_HUB_OFFLINE=1 python benchmarks/profile_step.py --model gpt-neo-125m --methods lora
    HF_HUB_OFFLINE=1 python benchmarks/profile_step.py --model gpt-neo-125m --methods lora --extra='--lora_dropout 0.05'
    HF_HUB_OFFLINE=1 python benchmarks/profile_step.py --model gpt-neo-125m --methods finetune --warmup 3 --compile

It builds the method exactly as benchmarks/benchmark.py does (same RunConfig, batches from the Trainer's
length-grouped dataloader, same Trainer step, clipping and AdamW), runs --warmup untimed steps, then profiles
--steps steps. Printed per method: the step time, then the operators that took the most self time (CPU) with
their share and call count, and the share of all matmul-type operators (MATMUL_OPS: mm, addmm, bmm, baddbmm
and MKL/oneDNN linear) against everything else: the rest is what a step spends outside the matmuls the FLOP
model counts.
`--out FILE` writes the same figures as JSON. Run it alone on the machine, as the benchmark.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.benchmark import (add_measurement_flags, add_source_flags, base_model, draw_batches,  # noqa: E402
                                  model_source, ours_step, run_config, start_measurement)
from common.data.loading import load_splits  # noqa: E402
from common.core.atomic import write_json  # noqa: E402
from common.methods import build_method  # noqa: E402
from common.models.loading import load_tokenizer  # noqa: E402
from common.training.trainer import build_trainer  # noqa: E402

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_mkl_linear", "aten::mkldnn_linear")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Profile the project's training step per operator.")
    add_measurement_flags(parser, model="tiny", steps=2, gen_examples=1)
    add_source_flags(parser, train_pool=100)
    parser.add_argument("--top", type=int, default=15, help="Operators listed per method.")
    parser.add_argument("--extra", default="", help="Further training flags in one string, e.g. "
                        "--extra='--lora_dropout 0.05' or --extra='--fast_kernels false' (the methods they belong to).")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's forward first; the "
                        "warm-up steps (compilation included) are timed and reported as warmup_s.")
    parser.add_argument("--out", default=None, help="Optional JSON file for the figures.")
    return parser


def profile_method(args, method: str, data: Path, tmp: Path, source) -> dict:
    model_dir, tokenizer_dir, make_base = source
    cfg = run_config(args, method, data, model_dir, tokenizer_dir, tmp, extra=shlex.split(args.extra))
    tokenizer = load_tokenizer(cfg.model)
    splits, _ = load_splits(cfg.data)
    base = base_model(make_base, cfg)
    model = build_method(cfg.method_name, base, cfg.method, cfg.model).to(args.device)
    trainer = build_trainer(cfg, model, tokenizer, splits)
    trainer.create_optimizer()
    params = [p for p in model.parameters() if p.requires_grad]
    batches = draw_batches(trainer, args.warmup + args.steps)
    if args.compile:
        model.forward = torch.compile(model.forward)
    start = time.perf_counter()
    for batch in batches[:args.warmup]:
        ours_step(trainer, model, params, batch)
    warmup = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for batch in batches[args.warmup:]:
            ours_step(trainer, model, params, batch)
        seconds = (time.perf_counter() - start) / args.steps
    return {**summarize(prof, seconds, args.steps, [tuple(b["input_ids"].shape) for b in batches[args.warmup:]],
                        args.top), "warmup_s": warmup, "compiled": args.compile}


def summarize(prof, seconds: float, steps: int, shapes: list, top: int) -> dict:
    """Per-step self time by operator (top `top`), and the matmul share of all self time."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"s_per_step": seconds, "batch_shapes": shapes, "profiled_self_s_per_step": total / 1e6 / steps,
            "matmul_share": matmul / total,
            "top": [{"op": e.key, "self_s_per_step": e.self_cpu_time_total / 1e6 / steps,
                     "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps} for e in rows]}


def print_profile(method: str, result: dict) -> None:
    print(f"\n{method}: {result['s_per_step']:.2f} s/step over batches {result['batch_shapes']} "
          f"(warm-up {result['warmup_s']:.1f} s{', compilation included' if result['compiled'] else ''}); "
          f"matmul ops {100 * result['matmul_share']:.0f}% of self time")
    print("| operator | s/step | share | calls/step |\n|---|---|---|---|")
    for row in result["top"]:
        print(f"| {row['op']} | {row['self_s_per_step']:.3f} | {100 * row['share']:.1f}% | "
              f"{row['calls_per_step']:.0f} |")


def main(args: argparse.Namespace) -> dict:
    load_before = start_measurement(args)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = model_source(args.model, Path(tmp), args.tokenizer)
        for method in args.methods:
            results[method] = profile_method(args, method, Path(args.data_dir), Path(tmp), source)
            print_profile(method, results[method])
    out = {"model": args.model, "torch_threads": torch.get_num_threads(), "load_average_before": load_before,
           "load_average_after": os.getloadavg(), "settings": vars(args), "methods": results}
    print(f"\nload {load_before[0]:.2f} -> {out['load_average_after'][0]:.2f}")
    if args.out:
        write_json(Path(args.out), out)
    return out


if __name__ == "__main__":
    main(make_parser().parse_args())
