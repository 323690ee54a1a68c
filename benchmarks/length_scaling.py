"""Cost per example against article length: ours' training step and generation at several --max_source_length.

    HF_HUB_OFFLINE=1 python benchmarks/length_scaling.py                        # GPT-Neo-125M shape, 256/512/1024
    HF_HUB_OFFLINE=1 python benchmarks/length_scaling.py --model tiny --article_tokens 16 32 \\
        --steps 1 --gen_examples 2 --max_new_tokens 4 --max_target_length 8     # smoke test

Every article is made long enough to be cut at exactly --article_tokens (consecutive real articles joined up
to the longest length in words; a word is at least one token), so each length is what every example costs.
For each method and length the benchmark's ours path runs (`benchmarks/benchmark.py`: the RunConfig a
training script parses, build_method, build_trainer, batches from the Trainer's length-grouped dataloader,
the Trainer's training_step and AdamW; generate_local_tokens), and the table gives seconds per training
example and per generated summary, tokens/s and peak memory, with each length's growth over the first.
Random weights (gpt-neo-125m) seldom emit EOS, so every summary runs to --max_new_tokens. A quiet machine
is needed for the figures to mean anything (the load average is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.benchmark import (add_measurement_flags, base_model, default_data_dir, draw_batches,  # noqa: E402
                                  model_source, ours_step, run_config, start_measurement, timed)
from common.data.loading import load_splits  # noqa: E402
from common.generation.generate import generate_local_tokens  # noqa: E402
from common.methods import build_method  # noqa: E402
from common.models.loading import load_tokenizer  # noqa: E402
from common.data.prompts import build_prompts  # noqa: E402
from common.training.trainer import build_trainer  # noqa: E402


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Ours' training step and generation time per example against "
                                     "article length.")
    add_measurement_flags(parser, model="gpt-neo-125m", steps=2, gen_examples=16)
    parser.add_argument("--article_tokens", type=int, nargs="+", default=[256, 512, 1024],
                        help="Article lengths (--max_source_length) to measure.")
    parser.add_argument("--tokenizer", default=None, help="gpt-neo-125m only: tokenizer folder (default: the "
                        "offline SmolLM2 folder), as in benchmark.py.")
    parser.add_argument("--data_dir", default=str(default_data_dir()), help="Folder with train.jsonl and "
                        "test.jsonl whose articles are joined into long ones (default: %(default)s).")
    parser.add_argument("--out", default=None, help="Also write the results as JSON here.")
    return parser


def main(args: argparse.Namespace) -> dict:
    load_before = start_measurement(args)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_long_articles(Path(args.data_dir), Path(tmp) / "data", max(args.article_tokens))
        model_dir, tokenizer_dir, make_base = model_source(args.model, Path(tmp), args.tokenizer)
        for method in args.methods:
            for length in args.article_tokens:
                settings = bench_settings(args, length)
                cfg = run_config(settings, method, data, model_dir, tokenizer_dir, Path(tmp))
                rows.setdefault(method, []).append(measure(settings, cfg, make_base))
    results = {"model": args.model, "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(), "settings": vars(args),
               "methods": {method: with_growth(r) for method, r in rows.items()}}
    print_table(results)
    if args.out:
        from common.core.atomic import write_json

        write_json(Path(args.out), results)
    return results


def bench_settings(args: argparse.Namespace, length: int) -> argparse.Namespace:
    """The benchmark's settings for one length: just enough train rows for the drawn batches."""
    return argparse.Namespace(**{**vars(args), "max_source_length": length,
                                 "train_pool": args.batch_size * (args.warmup + args.steps)})


def write_long_articles(source: Path, out: Path, words: int) -> Path:
    """train.jsonl and test.jsonl beside each other in `out`, each article the source row's own followed by
    the next rows' until it holds at least `words` words; ids and highlights stay the row's own."""
    out.mkdir(parents=True)
    for name in ("train.jsonl", "test.jsonl"):
        rows = [json.loads(line) for line in (source / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        with (out / name).open("w", encoding="utf-8") as handle:
            for i, row in enumerate(rows):
                text, j = row["article"].split(), i + 1
                while len(text) < words:
                    text += rows[j % len(rows)]["article"].split()
                    j += 1
                handle.write(json.dumps({**row, "article": " ".join(text)}) + "\n")
    return out


def measure(args, cfg, make_base) -> dict:
    """Ours' training steps and generation for one method and length (as benchmark.py runs ours)."""
    tokenizer = load_tokenizer(cfg.model)
    splits, _ = load_splits(cfg.data)
    base = base_model(make_base, cfg)
    model = build_method(cfg.method_name, base, cfg.method, cfg.model).to(args.device)
    trainer = build_trainer(cfg, model, tokenizer, splits)
    batches = draw_batches(trainer, args.warmup + args.steps)
    params = [p for p in model.parameters() if p.requires_grad]
    trainer.create_optimizer()
    seconds, memory = [], None
    for i, batch in enumerate(batches):
        took, used = timed(args, lambda: ours_step(trainer, model, params, batch), release_heap=i == 0)
        memory = memory or used
        if i >= args.warmup:
            seconds.append(took)
    timed_batches = batches[args.warmup:]
    examples = sum(len(b["input_ids"]) for b in timed_batches)
    tokens = sum(int(b["attention_mask"].sum()) for b in timed_batches)
    prompts = build_prompts(tokenizer, splits["test"]["article"], cfg.data)
    generate_local_tokens(model, tokenizer, prompts[:1], dataclasses.replace(cfg.generation, max_new_tokens=2))
    holder = {}
    gen_seconds, gen_memory = timed(args, lambda: holder.update(rows=generate_local_tokens(
        model, tokenizer, prompts, cfg.generation)))
    generated = sum(map(len, holder["rows"]))
    print(f"{cfg.method_name} @ {cfg.data.max_source_length} article tokens: {sum(seconds):.2f} s for {examples} "
          f"training examples, {gen_seconds:.2f} s for {len(prompts)} summaries", flush=True)
    return {"article_tokens": cfg.data.max_source_length,
            "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
            "mean_train_tokens_per_example": tokens / examples,
            "train_s_per_example": sum(seconds) / examples, "train_tokens_per_s": tokens / sum(seconds),
            "s_per_step": sum(seconds) / len(seconds), "train_peak_memory_mib": memory[0] / 2**20,
            "gen_s_per_example": gen_seconds / len(prompts), "gen_tokens_per_s": generated / gen_seconds,
            "gen_tokens": generated, "gen_prompts": len(prompts), "gen_peak_memory_mib": gen_memory[0] / 2**20}


def with_growth(rows: list[dict]) -> list[dict]:
    """Each length's row with its per-example costs over the first length's."""
    first = rows[0]
    return [{**r, "growth": {key: r[key] / first[key] for key in ("article_tokens", "train_s_per_example",
                                                                   "gen_s_per_example")}} for r in rows]


def print_table(results: dict) -> None:
    print(f"\nmodel {results['model']} | {results['dtype']} | {results['torch_threads']} threads | load "
          f"{results['load_average_before'][0]:.2f} -> {results['load_average_after'][0]:.2f}")
    header = ("method", "article tokens", "prompt tokens", "train s/example", "train tok/s", "train peak MiB",
              "gen s/example", "gen tok/s", "gen peak MiB", "growth: length / train / gen")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for method, rows in results["methods"].items():
        for r in rows:
            g = r["growth"]
            print(f"| {method} | {r['article_tokens']} | {r['mean_prompt_tokens']:.0f} | "
                  f"{r['train_s_per_example']:.3f} | {r['train_tokens_per_s']:.0f} | "
                  f"{r['train_peak_memory_mib']:.0f} | "
                  f"{r['gen_s_per_example']:.3f} | {r['gen_tokens_per_s']:.1f} | {r['gen_peak_memory_mib']:.0f} | "
                  f"{g['article_tokens']:.1f}x / {g['train_s_per_example']:.2f}x / {g['gen_s_per_example']:.2f}x |")


if __name__ == "__main__":
    main(make_parser().parse_args())
