"""Generation alone, ours against stock `generate`, and greedy decoding against the memory wall
(`benchmarks/benchmark.py --generation_only`).

    HF_HUB_OFFLINE=1 python benchmarks/benchmark.py --model gpt-neo-125m --generation_only --num_beams 4 \\
        --no_repeat_ngram_size 3 --gen_examples 8 --gen_batch_size 8
    HF_HUB_OFFLINE=1 python benchmarks/benchmark.py --model gpt-neo-125m --generation_only --num_beams 1

Per method, on the same model (its fused kernels in both paths, so that the search is all that differs),
prompts and settings, the two paths take turns (`--rounds`, the first path alternating):

- ours: `generate_local_tokens`: length-sorted batches; beams through `generation.beam_search` (each prompt
  prefilled once, the cache reordered in place), greedy through `generate` with the in-place cache;
- stock: `benchmarks/stock.stock_generate`: `model.generate` on batches in input order, transformers' default
  cache, with our summary-only n-gram blocking so that the settings are the same.

Each path is also run with `max_new_tokens=1` (the prefill and the first token only): `prefill_seconds`, and
`decode_seconds` the rest. `same_generations`: prompts whose tokens are equal in both paths.

Greedy decoding reads, at every step, every weight and every row's cached keys and values; on a CPU that
makes it memory-bound. `decode_bytes` counts those bytes for ours' batches (the parameters but the position
table, once per step; keys and values of each layer over the padded width plus the tokens generated so far,
for every row the batch keeps), `read_bandwidth_bytes_per_s` is the machine's read rate measured in this run
(`read_bandwidth`: sums over a 1 GiB buffer, far larger than any cache, with the same threads), and
`bandwidth_fraction` = decode_bytes / decode_seconds / that rate: 1.0 would be the physical limit.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from common.generation.generate import generate_local_tokens


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes per second that `torch.sum` reads from a buffer far larger than the caches (best of `repeats`).

    Example:
        >>> read_bandwidth(gib=0.01, repeats=1) > 1e8
        True
    """
    buffer = torch.ones(int(gib * 2**30) // 4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        float(buffer.sum())
        best = min(best, time.perf_counter() - start)
    return buffer.numel() * 4 / best


def kv_bytes_per_position(config) -> int:
    """Bytes of keys and values one row caches per position, all layers (fp32).

    Example (GPT-Neo-125M: 12 layers x 2 x 768 x 4 bytes):
        >>> from common.models.tiny import gpt_neo_125m_config
        >>> kv_bytes_per_position(gpt_neo_125m_config())
        73728
    """
    layers = getattr(config, "num_hidden_layers", None) or config.num_layers
    heads = getattr(config, "num_attention_heads", None) or config.num_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return layers * 2 * kv_heads * head_dim * 4


def weight_bytes_per_step(model) -> int:
    """Bytes of parameters a decoding step reads: all of them (each shared tensor once) but position tables."""
    seen, total = set(), 0
    for name, p in model.named_parameters():
        if p.data_ptr() in seen or name.endswith(("wpe.weight", "position_embeddings.weight")):
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    return total


def greedy_decode_bytes(model, prompts: list[list[int]], tokens: list[list[int]], batch_size: int,
                        eos_counts: bool = True) -> int:
    """Bytes ours' greedy decoding steps read over all batches (length-sorted, as `generate_local_tokens`):
    per decoding step (every forward pass after the prefill) the weights, and every kept row's cache over the
    padded prompt width plus the positions generated so far."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    per_position, weights = kv_bytes_per_position(model.config), weight_bytes_per_step(model)
    total = 0
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        forwards = max(len(tokens[i]) + int(eos_counts) for i in batch)  # an EOS is generated, then dropped
        for step in range(1, forwards):  # the prefill (step 0) is not decoding
            total += weights + len(batch) * (width + step) * per_position
    return total


def time_paths(paths: dict, prompts, gen_args, rounds: int, timed) -> dict:
    """Each path `rounds` times, taking turns (the first path alternating); best time per path, the
    prefill-only time, tokens, peak memory."""
    results = {name: {"seconds": [], "memory": []} for name in paths}
    names = list(paths)
    first_token_only = dataclasses.replace(gen_args, max_new_tokens=1)
    for name in names:
        paths[name](prompts[:1], dataclasses.replace(gen_args, max_new_tokens=2))  # first-call allocations
    for round_ in range(rounds):
        for name in names[round_ % 2:] + names[:round_ % 2]:
            holder = {}
            seconds, memory = timed(lambda: holder.update(tokens=paths[name](prompts, gen_args)))
            prefill, _ = timed(lambda: paths[name](prompts, first_token_only))
            results[name]["seconds"].append(seconds)
            results[name]["prefill"] = min(results[name].get("prefill", float("inf")), prefill)
            results[name]["memory"].append(memory[0])
            results[name]["tokens"] = holder["tokens"]
    return results


def summarize_path(raw: dict, prompts) -> dict:
    seconds = min(raw["seconds"])
    generated = sum(len(row) for row in raw["tokens"])
    return {"gen_tokens_per_s": generated / seconds, "gen_seconds": seconds, "gen_seconds_all": raw["seconds"],
            "prefill_seconds": raw["prefill"], "decode_seconds": seconds - raw["prefill"],
            "gen_tokens": generated, "gen_prompts": len(prompts),
            "gen_peak_memory_mib": max(raw["memory"]) / 2**20,
            "gen_mean_prompt_tokens": sum(map(len, prompts)) / len(prompts)}


def bench_generation(args, model, tokenizer, prompts, gen_args, timed, stock_generate) -> dict:
    """Ours and stock on `prompts`; greedy adds the decode bytes and the bandwidth fraction (ours' batches)."""
    model.eval()
    paths = {"ours": lambda p, g: generate_local_tokens(model, tokenizer, p, g),
             "stock": lambda p, g: stock_generate(model, tokenizer, p, g)}
    raw = time_paths(paths, prompts, gen_args, args.rounds, timed)
    result = {name: summarize_path(raw[name], prompts) for name in paths}
    same = sum(a == b for a, b in zip(raw["ours"]["tokens"], raw["stock"]["tokens"]))
    result["same_generations"] = f"{same}/{len(prompts)}"
    result["ratio_stock"] = {"gen_tokens_per_s": result["ours"]["gen_tokens_per_s"] / result["stock"]["gen_tokens_per_s"],
                             "gen_peak_memory": result["ours"]["gen_peak_memory_mib"] / result["stock"]["gen_peak_memory_mib"]}
    if gen_args.num_beams == 1:
        decode_bytes = greedy_decode_bytes(model, prompts, raw["ours"]["tokens"], gen_args.generation_batch_size)
        for name in paths:  # stock's batches differ (input order); the same bytes give a lower bound for it
            result[name]["decode_bytes"] = decode_bytes
            result[name]["decode_bytes_per_s"] = decode_bytes / result[name]["decode_seconds"]
    return result


def add_bandwidth(results: dict) -> None:
    """Measure the read bandwidth now and give each greedy path's decode rate as a fraction of it."""
    bandwidth = read_bandwidth()
    results["read_bandwidth_bytes_per_s"] = bandwidth
    for method in results["methods"].values():
        for name in ("ours", "stock"):
            if "decode_bytes_per_s" in method[name]:
                method[name]["bandwidth_fraction"] = method[name]["decode_bytes_per_s"] / bandwidth


def print_generation_report(results: dict) -> None:
    settings = results["settings"]
    print(f"\n{results['device']} | model {results['model']} | {results['torch_threads']} threads | "
          f"num_beams {settings['num_beams']} | no_repeat_ngram_size {settings['no_repeat_ngram_size']} | "
          f"{settings['gen_examples']} prompts x {settings['max_new_tokens']} new tokens, batch "
          f"{settings['gen_batch_size']} | load {results['load_average_before'][0]:.2f} -> "
          f"{results['load_average_after'][0]:.2f}")
    bandwidth = results.get("read_bandwidth_bytes_per_s")
    if bandwidth:
        print(f"read bandwidth {bandwidth / 1e9:.1f} GB/s")
    header = ("method", "path", "gen tok/s", "s", "prefill s", "decode s", "peak MiB", "decode GB/s", "% bandwidth",
              "same gen")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for method, r in results["methods"].items():
        for name in ("ours", "stock"):
            p = r[name]
            rate = f"{p['decode_bytes_per_s'] / 1e9:.1f}" if "decode_bytes_per_s" in p else "-"
            fraction = f"{100 * p['bandwidth_fraction']:.0f}%" if "bandwidth_fraction" in p else "-"
            print(f"| {method} | {name} | {p['gen_tokens_per_s']:.1f} | {p['gen_seconds']:.1f} | "
                  f"{p['prefill_seconds']:.1f} | {p['decode_seconds']:.1f} | {p['gen_peak_memory_mib']:.0f} | "
                  f"{rate} | {fraction} | {r['same_generations'] if name == 'ours' else ''} |")
        ratio = r["ratio_stock"]
        print(f"| {method} | ours/stock | {ratio['gen_tokens_per_s']:.2f}x | | | | "
              f"{ratio['gen_peak_memory']:.2f}x | | | |")
