"""Print the quality run's two tables for the README: ROUGE with 95% CIs, lengths, cut share, costs, and each
trained method's paired differences against zero-shot and lead-3 (from each test set's comparison.json).

    python benchmarks/quality_summary.py            # reads benchmarks/results/quality/<test-set>/comparison.json
    python benchmarks/quality_summary.py mixed_beams_4   # benchmarks/decoding_ablation.py's comparison

A trained run is paired with the zero-shot run decoded the same way (`lora_beams_4` with `zero_shot_beams_4`),
and a re-decoded run also with its preset's run (`lora`; greedy in the committed `*_beams_4` folders).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality"
KEYS = (("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeLsum", "R-Lsum"))


def ci(row: dict, key: str) -> str:
    return f"{row[key]:.1f} [{row[key + '_ci_low']:.1f}, {row[key + '_ci_high']:.1f}]"


def pair(pairs: list[dict], a: str, b: str) -> str:
    """`a - b` per key with its p-value, whichever way round comparison.json stores the pair."""
    for entry in pairs:
        if {entry["a"], entry["b"]} == {a, b}:
            sign = 1 if entry["a"] == a else -1
            return ", ".join(f"{name} {sign * entry['difference'][key]:+.2f} (p={entry['p_value'][key]:.3f})"
                             for key, name in KEYS)
    return "-"


def table(test_set: str) -> str:
    result = json.loads((RESULTS / test_set / "comparison.json").read_text(encoding="utf-8"))
    lines = [f"**{test_set}** ({result['n_examples']} rows)", "",
             "| system | ROUGE-1 [95% CI] | ROUGE-2 [95% CI] | ROUGE-Lsum [95% CI] | words pred/ref | cut at limit "
             "| train time | peak RSS |", "|---|---|---|---|---|---|---|---|"]
    for row in result["systems"]:
        cut = "-" if row["cut_at_limit_share"] is None else f"{100 * row['cut_at_limit_share']:.0f}%"
        wall = "-" if row["train_wall_time_s"] is None else f"{row['train_wall_time_s'] / 60:.1f} min"
        rss = "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:,.0f} MiB"
        lines.append(f"| {row['system']} | {ci(row, 'rouge1')} | {ci(row, 'rouge2')} | {ci(row, 'rougeLsum')} | "
                     f"{row['mean_words_predicted']:.1f} / {row['mean_words_reference']:.1f} | {cut} | {wall} | {rss} |")
    lines.append("")
    names = {row["system"]: row for row in result["systems"]}
    zero = [name for name, row in names.items() if row["method"] == "zero_shot"]
    lead = next((name for name, row in names.items() if row["method"] == "lead3"), None)
    for name, row in names.items():
        if row["baseline"]:
            continue
        suffix = decoding_suffix(name, row["method"])
        same = f"zero_shot{suffix}" if f"zero_shot{suffix}" in zero else (zero[0] if zero else None)
        line = f"- {name} vs {same}: {pair(result['pairs'], name, same)}; vs lead-3: {pair(result['pairs'], name, lead)}"
        if suffix and row["method"] in names:
            line += f"; vs {row['method']}: {pair(result['pairs'], name, row['method'])}"
        lines.append(line)
    return "\n".join(lines)


def decoding_suffix(name: str, method: str) -> str:
    """What a run's name adds to its method's, e.g. `_beams_4` (benchmarks/decoding_ablation.py's runs).

    Example:
        >>> decoding_suffix("lora_beams_4", "lora"), decoding_suffix("lora", "lora")
        ('_beams_4', '')
    """
    return name[len(method):] if name.startswith(method) else ""


if __name__ == "__main__":
    print("\n\n".join(table(name) for name in (sys.argv[1:] or ("cnn", "mixed"))))
