"""The performance report's tables, written from the committed JSON that the benchmarks wrote
(benchmarks/results/*.json), so docs/performance.md cannot drift from the measurements.

    python benchmarks/performance_summary.py    # rewrite every marked table in docs/performance.md

In the doc, the lines between `<!-- performance_summary:KIND:NAME -->` and `<!-- /performance_summary:KIND:NAME -->`
are `section("KIND:NAME")`: KIND is one of RENDERERS, NAME a result file's stem (`+` joins several).
A new measurement is one benchmark run (it writes the JSON) and then this script.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.quality_summary import write_doc  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
PATHS = ("ours", "stock", "naive")
# The targets set for the 2-core CPU runs: (what, threshold, the value per method and file, higher is better).
TARGETS = (
    ("training step >= 75% of the matmul peak", 0.75, lambda m: m["ours"]["matmul_fraction"], "{:.0%}"),
    ("training tokens/s >= 1.3x stock", 1.3, lambda m: speedup(m, "stock", "train_tokens_per_s"), "{:.2f}x"),
    ("generation tokens/s >= 1.5x stock", 1.5, lambda m: speedup(m, "stock", "gen_tokens_per_s"), "{:.2f}x"),
    ("peak memory <= stock", 1.0, lambda m: m["stock"]["train_peak_memory_mib"] / m["ours"]["train_peak_memory_mib"],
     "{:.2f}x less"),
)


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def speedup(method: dict, other: str, key: str) -> float:
    return method["ours"][key] / method[other][key]


def flop_ratio(method: dict, other: str) -> str:
    """How many more FLOPs per step `other` executed than ours ("-" in files from before the count existed)."""
    executed = [method[path].get("executed_flop_per_step") for path in (other, "ours")]
    return "-" if None in executed else f"{executed[0] / executed[1]:.2f}x"


def joined(method: dict, paths: list[str], key: str, form: str) -> str:
    return " / ".join(form.format(method[path][key]) for path in paths)


def caption(result: dict) -> str:
    s = result["settings"]
    return (f"{result['device']}, {result['dtype']}, torch {result['versions']['torch']}, {result['model']}; training "
            f"batch {s['batch_size']} at {s['max_source_length']} article + {s['max_target_length']} summary tokens, "
            f"{s['steps']} timed steps; generation {s['gen_examples']} articles x {s['max_new_tokens']} new tokens in "
            f"batches of {s['gen_batch_size']}; matmul peak {result['matmul_peak_flop_per_s'] / 1e9:.0f} GFLOP/s; "
            f"load {result['load_average_before'][0]:.2f} -> {result['load_average_after'][0]:.2f}")


def benchmark_table(result: dict) -> str:
    """benchmarks/benchmark.py's paths side by side, per method; ratios against stock when it ran, else naive."""
    paths = [path for path in PATHS if path in next(iter(result["methods"].values()))]
    other = paths[1]
    names = " / ".join(paths)
    columns = [
        (f"train tokens/s {names}", lambda m: joined(m, paths, "train_tokens_per_s", "{:,.0f}")),
        (f"ours vs {other}", lambda m: f"{speedup(m, other, 'train_tokens_per_s'):.2f}x"),
        (f"s/step {names}", lambda m: joined(m, paths, "s_per_step", "{:.2f}")),
        (f"% of matmul peak {names}", lambda m: " / ".join(f"{m[p]['matmul_fraction']:.0%}" for p in paths)),
        (f"{other} FLOPs / ours", lambda m: flop_ratio(m, other)),
        (f"peak / step memory MiB {names}", lambda m: " / ".join(
            f"{m[p]['train_peak_memory_mib']:,.0f} ({m[p]['train_step_memory_mib']:,.0f})" for p in paths)),
        (f"generation tokens/s {names}", lambda m: joined(m, paths, "gen_tokens_per_s", "{:.1f}")),
        (f"ours vs {other}", lambda m: f"{speedup(m, other, 'gen_tokens_per_s'):.2f}x"),
        ("same greedy tokens", lambda m: m.get(f"same_generations_{other}", m["same_generations"])),
    ]
    lines = [caption(result), "", "| method | " + " | ".join(name for name, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(cell(method) for _, cell in columns) + " |"
              for name, method in result["methods"].items()]
    if "probe_loss" in next(iter(result["methods"].values())):
        worst = max(method["probe_loss"]["max_abs_difference"] for method in result["methods"].values())
        lines += ["", f"Loss of ours and stock on the same batch before any step: largest difference {worst:.1e}."]
    return "\n".join(lines)


def targets_table(*results: dict) -> str:
    """Each target per method, one value per result file (in the order given), and how many it met."""
    methods = list(results[0]["methods"])
    lines = [f"| target | {' | '.join(methods)} | met |", "|---|" + "---|" * (len(methods) + 1)]
    for what, threshold, value, form in TARGETS:
        values = [[value(result["methods"][name]) for result in results] for name in methods]
        met = sum(v >= threshold for row in values for v in row)
        cells = [" / ".join(form.format(v) for v in row) for row in values]
        lines.append(f"| {what} | {' | '.join(cells)} | {met} of {len(methods) * len(results)} |")
    return "\n".join(lines)


def projections_table(result: dict) -> str:
    """The seed's full runs projected from the measured speeds (hours)."""
    paths = [path for path in PATHS if f"{path}_train_hours" in next(iter(result["projections"].values()))]
    names = " / ".join(paths)
    lines = [f"| method | epochs | training hours {names} | test generation hours {names} |", "|---|---|---|---|"]
    for name, row in result["projections"].items():
        train = " / ".join(f"{row[f'{path}_train_hours']:.1f}" for path in paths)
        generate = " / ".join(f"{row[f'{path}_generate_test_hours']:.2f}" for path in paths)
        lines.append(f"| {name} | {row['epochs']} | {train} | {generate} |")
    return "\n".join(lines)


OPERATOR_GROUPS = (("matmuls (`mm`, `addmm`)", ("aten::mm", "aten::addmm")),
                   ("fused attention forward + backward (SDPA)", ("scaled_dot_product",)),
                   ("GELU forward + backward", ("gelu",)))


def profile_table(result: dict) -> str:
    """Share of a step's profiled self time by operator group (benchmarks/profile_step.py)."""
    methods = result["methods"]
    shapes = {" and ".join(f"{b} x {t}" for b, t in m["batch_shapes"]) for m in methods.values()}
    lines = [f"Batches of {', '.join(sorted(shapes))} tokens.", "",
             "| operator | " + " | ".join(f"{name} ({m['s_per_step']:.1f} s/step)" for name, m in methods.items())
             + " |", "|---|" + "---|" * len(methods)]
    shares = {name: {group: sum(op["share"] for op in m["top"] if any(part in op["op"] for part in parts))
                     for group, parts in OPERATOR_GROUPS} for name, m in methods.items()}
    for group, _ in OPERATOR_GROUPS:
        lines.append(f"| {group} | " + " | ".join(f"{shares[name][group]:.0%}" for name in methods) + " |")
    lines.append("| everything else | " + " | ".join(f"{1 - sum(shares[name].values()):.0%}" for name in methods) + " |")
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table: the header, its rule and one line per row of cells.

    Example:
        >>> markdown_table(["a", "b"], [["1", "2"]])
        ['| a | b |', '|---|---|', '| 1 | 2 |']
    """
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |"
                                                                             for row in rows]


def data_scaling_table(result: dict) -> str:
    """benchmarks/data_scaling.py: load and tokenize time and the data's memory against rows."""
    header = ["rows", "file", "tokens", "load", "tokenize", "total", "peak RSS after load",
              "data memory (peak RSS - baseline)", "growth rows / time / memory"]
    rows = [[f"{row['rows']:,}", f"{row['file_mib']:.1f} MiB", f"{row['tokens'] / 1e6:.1f}M", f"{row['load_s']:.1f} s",
             f"{row['tokenize_s']:.1f} s", f"{row['total_s']:.1f} s", f"{row['peak_after_load_mib']:,.0f} MiB",
             f"{row['data_memory_mib']:,.0f} MiB",
             f"{row['growth']['rows']:.1f}x / {row['growth']['total_s']:.1f}x / {row['growth']['data_memory']:.1f}x"]
            for row in result["measurements"]]
    return "\n".join(markdown_table(header, rows) + comparison_lines(result.get("comparison", [])))


def comparison_lines(comparison: list[dict]) -> list[str]:
    """data_scaling.py --compare: whole texts tokenized (before issue 24) against cut ones, per row count."""
    if not comparison:
        return []
    header = ["rows", "total: whole texts / cut", "speedup (tokenize alone)", "peak RSS: whole texts / cut",
              "rows compared", "rows whose ids differ"]
    rows = [[f"{c['rows']:,}", f"{c['whole_total_s']:.1f} s / {c['total_s']:.1f} s",
             f"{c['total_speedup']:.2f}x ({c['tokenize_speedup']:.2f}x)",
             f"{c['whole_peak_mib']:,.0f} MiB / {c['peak_mib']:,.0f} MiB", f"{c['rows_compared']:,}",
             f"{c['rows_differing']:,}"] for c in comparison]
    return ["", *markdown_table(header, rows)]


def length_scaling_table(result: dict) -> str:
    """benchmarks/length_scaling.py: cost per example against article length, per method."""
    header = ["method", "article tokens", "train s/example", "train tok/s", "train peak MiB", "gen s/summary",
              "gen tok/s", "growth: length / train / gen"]
    rows = [[name, f"{row['article_tokens']}", f"{row['train_s_per_example']:.2f}", f"{row['train_tokens_per_s']:.0f}",
             f"{row['train_peak_memory_mib']:,.0f}", f"{row['gen_s_per_example']:.2f}", f"{row['gen_tokens_per_s']:.1f}",
             f"{row['growth']['article_tokens']:g}x / {row['growth']['train_s_per_example']:.2f}x / "
             f"{row['growth']['gen_s_per_example']:.2f}x"]
            for name, method_rows in result["methods"].items() for row in method_rows]
    return "\n".join(markdown_table(header, rows))


def generation_curve_table(result: dict) -> str:
    """benchmarks/generation_curve.py: generation speed against the batch size."""
    header = ["batch", "tokens/s", "seconds", "prefill s", "decode s", "prefill padding"]
    rows = [[f"{row['batch_size']}", f"{row['tokens_per_s']:.1f}", f"{row['seconds']:.1f}",
             f"{row['prefill_seconds']:.1f}", f"{row['decode_seconds']:.1f}", f"{row['prefill_padding_share']:.1%}"]
            for row in result["rows"]]
    return "\n".join([f"{result['prompts']} prompts ({result['mean_prompt_tokens']:.0f} tokens on average) x "
                      f"{result['max_new_tokens']} new tokens, {result['model']}.", "", *markdown_table(header, rows)])


def generation_search_table(result: dict) -> str:
    """benchmark.py --generation_only: ours against stock generate per method (and, greedy, the decode's
    fraction of the measured read bandwidth)."""
    settings = result["settings"]
    search = f"{settings['num_beams']} beams" if settings["num_beams"] > 1 else "greedy"
    load = f"load {result['load_average_before'][0]:.2f} -> {result['load_average_after'][0]:.2f}"
    bandwidth = result.get("read_bandwidth_bytes_per_s")
    ngram = settings["no_repeat_ngram_size"]
    blocking = f"repeated {ngram}-grams blocked" if ngram else "no n-gram blocking"
    head = (f"{result['model']}, {search}, {blocking}, "
            f"{settings['gen_examples']} prompts x up to {settings['max_new_tokens']} new tokens, batch "
            f"{settings['gen_batch_size']}, {result['torch_threads']} threads, {load}"
            + (f", read bandwidth {bandwidth / 1e9:.1f} GB/s" if bandwidth else "") + ".")
    header = ["method", "path", "tokens/s", "seconds", "prefill s", "decode s", "peak MiB", "same tokens"]
    if bandwidth:
        header += ["decode GB/s", "of bandwidth"]
    rows = []
    for method, m in result["methods"].items():
        for path in ("ours", "stock"):
            p = m[path]
            row = [method, path, f"{p['gen_tokens_per_s']:.1f}", f"{p['gen_seconds']:.1f}",
                   f"{p['prefill_seconds']:.1f}", f"{p['decode_seconds']:.1f}", f"{p['gen_peak_memory_mib']:,.0f}",
                   m["same_generations"] if path == "ours" else ""]
            if bandwidth:
                row += [f"{p['decode_bytes_per_s'] / 1e9:.1f}", f"{p['bandwidth_fraction']:.0%}"]
            rows.append(row)
        ratio = m["ratio_stock"]
        rows.append([method, "ours / stock", f"{ratio['gen_tokens_per_s']:.2f}x", "", "", "",
                     f"{ratio['gen_peak_memory']:.2f}x", ""] + (["", ""] if bandwidth else []))
    return "\n".join([head, "", *markdown_table(header, rows)])


RENDERERS: dict[str, Callable[..., str]] = {
    "benchmark": benchmark_table, "targets": targets_table, "projections": projections_table,
    "profile": profile_table, "data_scaling": data_scaling_table, "length_scaling": length_scaling_table,
    "generation_curve": generation_curve_table, "generation_search": generation_search_table,
}


def section(key: str) -> str:
    """The table a doc marks with `KIND:NAME[+NAME]`, from benchmarks/results/NAME.json."""
    kind, _, names = key.partition(":")
    return RENDERERS[kind](*(load(name) for name in names.split("+")))


if __name__ == "__main__":
    changed = write_doc(DOC, "performance_summary", section)
    print(f"{DOC.relative_to(ROOT)}: {'rewritten' if changed else 'already up to date'}")
