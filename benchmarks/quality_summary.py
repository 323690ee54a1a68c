"""The quality report's tables, written from the committed result files, so docs/quality.md cannot drift from them:
each test set's comparison.json (ROUGE with 95% CIs, lengths, cut share, costs, paired differences against
zero-shot and lead-3), the dev searches (benchmarks/tune_on_dev.py's JSON) and what beam search changed.

    python benchmarks/quality_summary.py                 # print the cnn and mixed tables
    python benchmarks/quality_summary.py mixed_beams_4   # benchmarks/decoding_ablation.py's comparison
    python benchmarks/quality_summary.py --write_docs    # rewrite every marked table in docs/quality.md

A trained run is paired with the zero-shot run decoded the same way (`lora_beams_4` with `zero_shot_beams_4`),
and a re-decoded run also with its preset's run (`lora`; greedy in the committed `*_beams_4` folders).

In a doc, the lines between `<!-- quality_summary:KEY -->` and `<!-- /quality_summary:KEY -->` are the
output of `section(KEY)`: `cnn` (a test set's table), `dev:NAME+NAME` (dev searches), `beams:SET+SET`,
`rates:NAME` (quality_run.py's learning-rate search), `recommendation:cnn` (evaluate_all.py's paragraph).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality"
DOC = ROOT / "docs" / "quality.md"
KEYS = (("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeLsum", "R-Lsum"))


def ci(row: dict, key: str) -> str:
    return f"{row[key]:.1f} [{row[key + '_ci_low']:.1f}, {row[key + '_ci_high']:.1f}]"


def paired(pairs: list[dict], a: str, b: str) -> tuple[dict, dict] | None:
    """(`a - b` per key, p-value per key), whichever way round comparison.json stores the pair; None if absent."""
    for entry in pairs:
        if {entry["a"], entry["b"]} == {a, b}:
            sign = 1 if entry["a"] == a else -1
            return {key: sign * value for key, value in entry["difference"].items()}, entry["p_value"]
    return None


def pair(pairs: list[dict], a: str, b: str) -> str:
    found = paired(pairs, a, b)
    if found is None:
        return "-"
    difference, p_value = found
    return ", ".join(f"{name} {difference[key]:+.2f} (p={p_value[key]:.3f})" for key, name in KEYS)


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def count(number: int | None) -> str:
    """A parameter count, short.

    Example:
        >>> count(2_654_208), count(55_296), count(134_515_008), count(0), count(None)
        ('2.65M', '55.3K', '134.5M', '0', '-')
    """
    if number is None:
        return "-"
    if number >= 100_000_000:
        return f"{number / 1e6:.1f}M"
    return f"{number / 1e6:.2f}M" if number >= 1_000_000 else f"{number / 1e3:.1f}K" if number >= 1_000 else str(number)


def train_seconds(row: dict) -> float | None:
    """The optimizer steps' seconds (`train_time_s`); older comparisons only hold the wall time with the
    evaluations (`train_wall_time_s`)."""
    return row.get("train_time_s", row.get("train_wall_time_s"))


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def load(test_set: str) -> dict:
    return json.loads((RESULTS / test_set / "comparison.json").read_text(encoding="utf-8"))


def table(test_set: str) -> str:
    result = load(test_set)
    lines = [f"**{test_set}** ({result['n_examples']} rows)", "",
             "| system | trainable | ROUGE-1 [95% CI] | ROUGE-2 [95% CI] | ROUGE-Lsum [95% CI] | words pred/ref "
             "| cut at limit | train time | peak RSS |", "|---|---|---|---|---|---|---|---|---|"]
    for row in result["systems"]:
        rss = "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:,.0f} MiB"
        lines.append(f"| {row['system']} | {count(row.get('trainable'))} | {ci(row, 'rouge1')} | {ci(row, 'rouge2')} | "
                     f"{ci(row, 'rougeLsum')} | "
                     f"{row['mean_words_predicted']:.1f} / {row['mean_words_reference']:.1f} | "
                     f"{percent(row['cut_at_limit_share'])} | {minutes(train_seconds(row))} | {rss} |")
    lines.append("")
    names = {row["system"]: row for row in result["systems"]}
    zero = [name for name, row in names.items() if row["method"] == "zero_shot"]
    lead = next((name for name, row in names.items() if row["method"] == "lead3"), None)
    lines += [f"- {name} vs lead-3: {pair(result['pairs'], name, lead)}" for name in zero if lead]
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


def beams_table(*test_sets: str) -> str:
    """ROUGE-Lsum of each re-decoded run against its preset's run on the same rows, one column per test set."""
    results = {name: load(name) for name in test_sets}
    first = results[test_sets[0]]["systems"]
    redecoded = [(row["method"], row["system"]) for row in first if decoding_suffix(row["system"], row["method"])]
    lines = ["| runs | " + " | ".join(f"{name} ({results[name]['n_examples']} rows)" for name in test_sets) + " |",
             "|---|" + "---|" * len(test_sets)]
    for before, after in redecoded:
        cells = []
        for name in test_sets:
            scores = {row["system"]: row["rougeLsum"] for row in results[name]["systems"]}
            difference, p_value = paired(results[name]["pairs"], after, before)
            cells.append(f"{scores[before]:.1f} -> {scores[after]:.1f} ({difference['rougeLsum']:+.2f}, "
                         f"p={p_value['rougeLsum']:.3f})")
        lines.append(f"| {before} -> {after} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dev_table(*searches: str) -> str:
    """Every variant of the named dev searches (benchmarks/results/quality/dev/NAME.json), one row each."""
    lines = ["| search | variant | rows | ROUGE-1 / 2 / Lsum | words pred/ref | cut at limit | s/row | train time |",
             "|---|---|---|---|---|---|---|---|"]
    for search in searches:
        result = json.loads((RESULTS / "dev" / f"{search}.json").read_text(encoding="utf-8"))
        for row in result["variants"]:
            rouge = " / ".join(f"{row['rouge'][key]:.1f}" for key, _ in KEYS)
            words = f"{row['mean_words']['predicted']:.1f} / {row['mean_words']['reference']:.1f}"
            speed = "-" if row.get("generation_s_per_row") is None else f"{row['generation_s_per_row']:.1f}"
            train = "-" if row.get("train_wall_time_s") is None else f"{row['train_wall_time_s'] / 60:.1f} min"
            lines.append(f"| {search} | {row['variant']} | {row['rows']} | {rouge} | {words} | "
                         f"{percent(row.get('cut_share'))} | {speed} | {train} |")
    return "\n".join(lines)


def rates_table(search: str) -> str:
    """Each rate a system trained with and its final dev loss and dev ROUGE-Lsum (benchmarks/quality_run.py's
    benchmarks/results/quality/dev/NAME.json); the kept run in bold."""
    result = json.loads((RESULTS / "dev" / f"{search}.json").read_text(encoding="utf-8"))
    lines = [f"| system | learning rate | dev loss ({result['dev_loss_rows']} rows) | dev ROUGE-Lsum "
             f"({result['dev_rouge_rows']} rows, greedy) | train time |", "|---|---|---|---|---|"]
    for system in result["systems"]:
        for run in system["tried"]:
            kept = run["learning_rate"] == system["kept_learning_rate"] and len(system["tried"]) > 1
            rate = f"**{run['learning_rate']:g}** (kept)" if kept else f"{run['learning_rate']:g}"
            lines.append(f"| {system['system']} | {rate} | {run['dev_loss']:.4f} | {run['dev_rougeLsum']:.1f} | "
                         f"{minutes(run['train_time_s'])} |")
    return "\n".join(lines)


def recommendation(test_set: str) -> str:
    """The paragraph evaluate_all.py wrote from a test set's numbers, and its Pareto fronts."""
    written = load(test_set)["recommendation"]
    fronts = written["pareto_front"]
    return (f"{written['text']}\n\nPareto front (ROUGE-Lsum against trainable parameters): "
            f"{', '.join(fronts['trainable'])}; against training time: {', '.join(fronts['train_time_s'])}.")


SECTIONS: dict[str, Callable[..., str]] = {"": table, "dev": dev_table, "beams": beams_table, "rates": rates_table,
                                           "recommendation": recommendation}


def section(key: str) -> str:
    """The table a doc marks with `key`: `cnn` (a test set), `dev:NAME+NAME` or `beams:SET+SET`."""
    kind, _, names = key.rpartition(":")
    return SECTIONS[kind](*names.split("+"))


def fill_marked(text: str, tag: str, render: Callable[[str], str]) -> str:
    """`text` with the lines between each `<!-- TAG:KEY -->` and `<!-- /TAG:KEY -->` replaced by `render(KEY)`.

    Example:
        >>> fill_marked("a\\n<!-- t:x -->\\nold\\n<!-- /t:x -->\\nb", "t", str.upper)
        'a\\n<!-- t:x -->\\nX\\n<!-- /t:x -->\\nb'
    """
    pattern = re.compile(rf"(<!-- {tag}:(\S+) -->\n).*?(<!-- /{tag}:\2 -->)", re.DOTALL)
    if len(pattern.findall(text)) != text.count(f"<!-- {tag}:"):
        raise ValueError(f"a <!-- {tag}:KEY --> marker has no <!-- /{tag}:KEY --> after it")
    return pattern.sub(lambda match: f"{match[1]}{render(match[2])}\n{match[3]}", text)


def write_doc(path: Path, tag: str, render: Callable[[str], str]) -> bool:
    """Rewrite the marked tables of `path` from the committed results; True when anything changed."""
    text = path.read_text(encoding="utf-8")
    filled = fill_marked(text, tag, render)
    if filled != text:
        path.write_text(filled, encoding="utf-8")
    return filled != text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_sets", nargs="*", default=["cnn", "mixed"],
                        help="folders under benchmarks/results/quality/ whose comparison.json to print")
    parser.add_argument("--write_docs", action="store_true",
                        help=f"rewrite the marked tables of {DOC.relative_to(ROOT)} instead of printing")
    args = parser.parse_args(argv)
    if args.write_docs:
        changed = write_doc(DOC, "quality_summary", section)
        print(f"{DOC.relative_to(ROOT)}: {'rewritten' if changed else 'already up to date'}")
    else:
        print("\n\n".join(table(name) for name in args.test_sets))


if __name__ == "__main__":
    main()
