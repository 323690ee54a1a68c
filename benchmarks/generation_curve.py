"""Generation tokens/s of ours against the generation batch size, to choose --generation_batch_size from a
measured curve rather than a guess.

    HF_HUB_OFFLINE=1 python benchmarks/generation_curve.py --model gpt-neo-125m --batch_sizes 4 8 16 32
    HF_HUB_OFFLINE=1 python benchmarks/generation_curve.py --model tiny --gen_examples 4 --batch_sizes 1 2 \\
        --max_new_tokens 4                                                   # smoke test

The prompts are the benchmark's (`benchmarks/benchmark.py`: the RunConfig a training script parses, its test
rows through build_prompts), the model the zero-shot base model built as a training script gets it (fused
kernels), the generation `common.generation.generate.generate_local_tokens` (length-sorted, left-padded batches, in-place
KV cache). Each batch size summarises the same --gen_examples articles with --max_new_tokens new tokens after a
2-token warm-up; random weights (gpt-neo-125m) seldom emit EOS, so every row runs to the limit. The table gives
tokens/s, the time split into prefill (one new token per prompt) and decoding (the rest), and the share of
prefill positions that are padding (the most that prefilling prompts one at a time could save). Run it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.benchmark import (add_measurement_flags, add_source_flags, base_model, model_source,  # noqa: E402
                                  run_config, start_measurement)
from common.data.loading import load_splits  # noqa: E402
from common.core.atomic import write_json  # noqa: E402
from common.generation.generate import generate_local_tokens  # noqa: E402
from common.models.loading import load_tokenizer  # noqa: E402
from common.data.prompts import build_prompts  # noqa: E402


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Ours' generation tokens/s against --generation_batch_size.")
    add_measurement_flags(parser, model="tiny", steps=1, gen_examples=32)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[4, 8, 16, 32], help="Batch sizes to time.")
    add_source_flags(parser, train_pool=1)
    parser.add_argument("--out", default=None, help="Optional JSON file for the figures.")
    return parser


def padding_share(prompts: list[list[int]], batch_size: int) -> float:
    """Share of the prefill's token positions that are padding when prompts are length-sorted and batched as
    generate_local_tokens does: what prefilling prompts one at a time could save at most.

    Example:
        >>> padding_share([[1, 2, 3], [4], [5, 6]], batch_size=2)   # batches [3, 2] -> 6 slots, [1] -> 1 slot
        0.142857...
    """
    lengths = sorted(map(len, prompts), reverse=True)
    batches = [lengths[i:i + batch_size] for i in range(0, len(lengths), batch_size)]
    slots = sum(batch[0] * len(batch) for batch in batches)
    return 1 - sum(lengths) / slots


def timed_generation(model, tokenizer, prompts, settings) -> tuple[float, int]:
    start = time.perf_counter()
    rows = generate_local_tokens(model, tokenizer, prompts, settings)
    return time.perf_counter() - start, sum(map(len, rows))


def main(args: argparse.Namespace) -> dict:
    load_before = start_measurement(args)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, tokenizer_dir, make_base = model_source(args.model, Path(tmp), args.tokenizer)
        cfg = run_config(args, "finetune", Path(args.data_dir), model_dir, tokenizer_dir, Path(tmp))
        tokenizer, (splits, _) = load_tokenizer(cfg.model), load_splits(cfg.data, ("test",))
        model = base_model(make_base, cfg).to(args.device)
        prompts = build_prompts(tokenizer, splits["test"]["article"], cfg.data)
        timed_generation(model, tokenizer, prompts[:1], dataclasses.replace(cfg.generation, max_new_tokens=2))
        rows = []
        for size in args.batch_sizes:
            settings = dataclasses.replace(cfg.generation, generation_batch_size=size)
            prefill, _ = timed_generation(model, tokenizer, prompts, dataclasses.replace(settings, max_new_tokens=1))
            seconds, tokens = timed_generation(model, tokenizer, prompts, settings)
            rows.append({"batch_size": size, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
                         "prefill_seconds": prefill, "decode_seconds": seconds - prefill,
                         "prefill_padding_share": padding_share(prompts, size)})
            print(f"| {size} | {tokens / seconds:.1f} | {seconds:.1f} | {prefill:.1f} | {seconds - prefill:.1f} | "
                  f"{100 * rows[-1]['prefill_padding_share']:.1f}% |", flush=True)
    result = {"model": args.model, "prompts": len(prompts), "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
              "max_new_tokens": args.max_new_tokens, "torch_threads": torch.get_num_threads(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows}
    print(f"{len(prompts)} prompts of {result['mean_prompt_tokens']:.0f} tokens on average, {args.max_new_tokens} new "
          f"tokens; load {load_before[0]:.2f} -> {result['load_average_after'][0]:.2f}\n"
          "(columns: batch size | tokens/s | seconds | prefill s | decode s | padding share of the prefill)")
    if args.out:
        write_json(Path(args.out), result)
    return result


if __name__ == "__main__":
    main(make_parser().parse_args())
