"""Write a `Comparison` out: comparison.md/.csv/.json and examples.md, each atomically.

Example (the comparison of one system, written to a temporary folder instead of runs/comparison):
    >>> import tempfile
    >>> from common.comparison.systems import System, compare
    >>> lora = System("lora", "lora", "runs/lora", ["The cat sat."], ["The cat sat."], keys=["a"])
    >>> result = compare([lora], ["a"], samples=100, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     markdown = write_reports(result, [], tmp, num_examples=3)       # returns comparison.md's text
    ...     sorted(p.name for p in Path(tmp).iterdir())
    ['comparison.csv', 'comparison.json', 'comparison.md', 'examples.md']
    >>> markdown.splitlines()[:3]
    ['# Summarization comparison', '', 'All systems were scored on the same 1 test examples.']
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..core.atomic import atomic_write_text, write_json
from ..runs.outputs import PEAK_MEMORY_FIELDS, RUN_FIELDS
from ..scoring.rouge import ROUGE_KEYS
from .systems import ALPHA, RANK_KEY, Comparison, Scored, Skipped

KEY_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
TABLE_KEYS = (RANK_KEY, *(k for k in ROUGE_KEYS if k != RANK_KEY))
COST_FIELDS = tuple(name for name in RUN_FIELDS if name != "method")  # checked for type when read
ARTICLE_CHARS = 600
TEST_NAME = "two-sided paired permutation test (random sign flips of the per-example differences)"


def system_row(rank: int, scored: Scored) -> dict:
    """One flat row of scores and costs (None where run.json has no usable value).

    Example (one summary right, one half right; run.json records no training time):
        >>> from common.comparison.systems import System, score_system
        >>> lora = System("lora", "lora", "runs/lora", ["The cat sat.", "Rain fell."], ["The cat sat.", "Snow fell."],
        ...               keys=["a", "b"], run={"method": "lora", "trainable": 36864})
        >>> row = system_row(1, score_system(lora, ["a", "b"], samples=1000, seed=0))
        >>> row["rougeLsum"], row["rougeLsum_ci_low"], row["trainable"], row["train_time_s"]
        (75.0, 50.0, 36864, None)
    """
    system, run = scored.system, scored.system.run
    row = {"rank": rank, "system": system.name, "method": system.method, "baseline": system.is_baseline,
           "source": system.source, "n_examples": len(scored.scores), "n_examples_total": len(system.keys)}
    for key in ROUGE_KEYS:
        row.update({key: scored.means[key], f"{key}_ci_low": scored.ci[key][0], f"{key}_ci_high": scored.ci[key][1]})
    row.update({"empty_predictions": scored.empty_predictions, "mean_words_predicted": scored.mean_words[0],
                "mean_words_reference": scored.mean_words[1], "cut_at_limit_share": scored.cut_share})
    row.update({name: run.get(name) for name in COST_FIELDS})
    memory = run.get("peak_memory") or {}
    row.update({name: memory.get(name) for name in PEAK_MEMORY_FIELDS})
    return row


def system_rows(result: Comparison) -> list[dict]:
    return [system_row(rank, scored) for rank, scored in enumerate(result.systems, start=1)]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def human_count(value) -> str:
    """1234567 -> '1.23M'.

    Example:
        >>> human_count(36864), human_count(0), human_count(None)
        ('36.9K', '0', '-')
    """
    if _missing(value):
        return "-"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def human_bytes(value) -> str:
    """Bytes with a binary unit.

    Example:
        >>> human_bytes(157312), human_bytes(None)
        ('153.6 KiB', '-')
    """
    if _missing(value):
        return "-"
    for size, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def human_seconds(value) -> str:
    """Seconds as s, min or h.

    Example:
        >>> human_seconds(0.742), human_seconds(5400)
        ('0.7 s', '1.5 h')
    """
    if _missing(value):
        return "-"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    return f"{value / 60:.1f} min" if value >= 60 else f"{value:.1f} s"


def _memory(row: dict) -> str:
    if not _missing(row["peak_cuda_allocated_mib"]):
        return f"{row['peak_cuda_allocated_mib']:,.0f} MiB GPU"
    return "-" if _missing(row["peak_rss_mib"]) else f"{row['peak_rss_mib']:,.0f} MiB RSS"


def _trainable(row: dict) -> str:
    if _missing(row["trainable"]):
        return "-"
    percent = "" if _missing(row["trainable_percent"]) else f" ({row['trainable_percent']:.3g}%)"
    return human_count(row["trainable"]) + percent


def format_ci(mean: float, low: float, high: float) -> str:
    """Example:
        >>> format_ci(32.12, 30.2, 34.04)
        '32.1 [30.2, 34.0]'
    """
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def precisions_differ(rows: list[dict]) -> bool:
    """Whether the systems' summaries were generated in more than one precision (lead-3 generates none).

    Example:
        >>> precisions_differ([{"generation_precision": "fp32"}, {"generation_precision": None}])
        False
    """
    return len({row["generation_precision"] for row in rows if not _missing(row["generation_precision"])}) > 1


def precision_note(rows: list[dict]) -> str:
    """One sentence on the precision the summaries were generated in (run.json `generation_precision`).

    Example:
        >>> precision_note([{"system": "lora", "generation_precision": "bf16-autocast"}])
        'Summaries generated in bf16-autocast by every system that records it.'
    """
    named = {row["system"]: row["generation_precision"] for row in rows if not _missing(row["generation_precision"])}
    if not named:
        return "No run.json records the precision its summaries were generated in."
    if not precisions_differ(rows):
        return f"Summaries generated in {next(iter(named.values()))} by every system that records it."
    listed = ", ".join(f"{system}: {precision}" for system, precision in named.items())
    return (f"**Summaries were generated in different precisions** ({listed}): ROUGE and generation speed "
            "then differ for a reason that is not the method.")


def markdown_table(rows: list[dict]) -> str:
    """The ranked table: ROUGE with 95% CIs, then empty predictions, length, the share of summaries cut at
    max_new_tokens instead of ended with EOS ('-': unknown, e.g. lead-3 or a CSV without `Stopped`) and costs:
    training time (optimizer steps only), evaluation time during training (validation loss and learning-curve
    summaries), training tokens/s (over the training time). A `generation precision` column is added when the
    systems were not all generated in the same precision: their ROUGE then differs for a reason that is not
    the method."""
    precision = precisions_differ(rows)
    header = ["rank", "system", "method", "n", *(KEY_NAMES[k] + " [95% CI]" for k in TABLE_KEYS), "empty",
              "words pred / ref", "cut at limit", *(["generation precision"] if precision else []),
              "trainable (% of total)", "train time", "eval time", "train tok/s", "peak memory", "saved size"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        method = row["method"] + (" (baseline)" if row["baseline"] else "")
        cells = [row["rank"], row["system"], method, row["n_examples"],
                 *(format_ci(row[k], row[f"{k}_ci_low"], row[f"{k}_ci_high"]) for k in TABLE_KEYS),
                 row["empty_predictions"], f"{row['mean_words_predicted']:.1f} / {row['mean_words_reference']:.1f}",
                 "-" if _missing(row["cut_at_limit_share"]) else f"{100 * row['cut_at_limit_share']:.0f}%",
                 *([row["generation_precision"] or "-"] if precision else []),
                 _trainable(row), human_seconds(row["train_time_s"]), human_seconds(row["eval_time_s"]),
                 "-" if _missing(row["train_tokens_per_s"]) else f"{row['train_tokens_per_s']:,.0f}",
                 _memory(row), human_bytes(row["saved_size_bytes"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def pair_line(pair: dict) -> str:
    """One line per pair: differences a - b with p-values, and which are significant at 0.05.

    Example (`pair` as `systems.compare_pair` returns it):
        >>> pair_line({"a": "lora", "b": "lead3", "n": 60, "significant": ["rougeLsum"],
        ...            "difference": {"rougeLsum": 4.2, "rouge1": 3.1, "rouge2": 1.05, "rougeL": 2.0},
        ...            "p_value": {"rougeLsum": 0.001, "rouge1": 0.08, "rouge2": 0.2, "rougeL": 0.06}})
        '- **lora** vs **lead3** (n=60): ROUGE-Lsum +4.20 (p=0.0010), ROUGE-1 +3.10 (p=0.0800),
        ROUGE-2 +1.05 (p=0.2000), ROUGE-L +2.00 (p=0.0600). Significant at 0.05: ROUGE-Lsum.'
    """
    parts = [f"{KEY_NAMES[k]} {pair['difference'][k]:+.2f} (p={pair['p_value'][k]:.4f})" for k in TABLE_KEYS]
    significant = ", ".join(KEY_NAMES[k] for k in TABLE_KEYS if k in pair["significant"])
    verdict = f"Significant at {ALPHA}: {significant}." if significant else f"No difference significant at {ALPHA}."
    return f"- **{pair['a']}** vs **{pair['b']}** (n={pair['n']}): " + ", ".join(parts) + ". " + verdict


def example_set_note(result: Comparison) -> str:
    """Says when the systems were scored on different example sets (compared on the intersection)."""
    totals = {s.name: len(s.system.keys) for s in result.systems}
    if all(total == len(result.keys) for total in totals.values()):
        return f"All systems were scored on the same {len(result.keys)} test examples."
    listed = ", ".join(f"{name}: {total}" for name, total in totals.items())
    return (f"**The systems were scored on different example sets** ({listed} examples); every number below is "
            f"on the {len(result.keys)} examples common to all of them (matched by id).")


def skipped_lines(skipped: list[Skipped]) -> list[str]:
    return [f"- {s.name}: {s.reason}" for s in skipped]


def warning_lines(result: Comparison) -> list[str]:
    """One line per run.json field that could not be used (its cost is shown as missing)."""
    return [f"- {scored.name}: {warning}" for scored in result.systems for warning in scored.system.warnings]


def recommendation_lines(recommendation: dict | None) -> list[str]:
    """The Recommendation section: the paragraph `recommendation.recommend` wrote and the Pareto fronts.

    Example:
        >>> recommendation_lines({"text": "Best quality: **lora**.", "pareto_front": {"trainable": ["lora"],
        ...                       "train_time_s": ["lora", "zero_shot"]}})[2:]
        ['Best quality: **lora**.', '', '`pareto.png`: ROUGE-Lsum against trainable parameters and against training
        time. On the Pareto front (by means): by trainable parameters lora; by training time lora, zero_shot.', '']
    """
    if recommendation is None:
        return []
    fronts = recommendation["pareto_front"]
    return ["## Recommendation", "", recommendation["text"], "",
            "`pareto.png`: ROUGE-Lsum against trainable parameters and against training time. On the Pareto front "
            f"(by means): by trainable parameters {', '.join(fronts['trainable']) or '-'}; by training time "
            f"{', '.join(fronts['train_time_s']) or '-'}.", ""]


def comparison_markdown(result: Comparison, skipped: list[Skipped], recommendation: dict | None = None) -> str:
    """The whole comparison.md text (also what evaluate_all.py prints), with the recommendation when given."""
    rows = system_rows(result)
    lines = ["# Summarization comparison", "", example_set_note(result), "",
             f"Ranked by ROUGE-Lsum. ROUGE F1 x 100 (Porter stemming); 95% CIs from {result.samples} bootstrap "
             f"resamples of the examples (seed {result.seed}). Baselines: zero-shot and lead-3 (the article's first "
             "three sentences). `empty`: NaN or blank predictions, scored 0.", "", precision_note(rows), "",
             markdown_table(rows), "", *recommendation_lines(recommendation),
             "## Paired tests", "",
             f"Differences are the first system minus the second, in ROUGE points; p-values from a {TEST_NAME}, "
             f"{result.samples} resamples, seed {result.seed}, no correction for multiple comparisons.", ""]
    lines += [pair_line(pair) for pair in result.pairs] or ["- (only one system: nothing to compare)"]
    if warning_lines(result):
        lines += ["", "## Warnings", "", *warning_lines(result)]
    if skipped:
        lines += ["", "## Skipped", "", *skipped_lines(skipped)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>") or "*(empty)*"


def examples_markdown(result: Comparison, count: int) -> str:
    """The first `count` common examples: the article (truncated), the reference and every summary."""
    lines = ["# Example summaries", ""]
    for index, key in enumerate(result.keys[:count], start=1):
        system = next((s.system for s in result.systems if s.system.articles is not None), result.systems[0].system)
        row = system.keys.index(key)
        article = system.articles[row] if system.articles is not None else "(no Article column)"
        shown = article if len(article) <= ARTICLE_CHARS else article[:ARTICLE_CHARS].rstrip() + " [...]"
        lines += [f"## Example {index} (id {key})", "", "> " + shown.replace("\n", " "), "",
                  "| system | summary |", "|---|---|", f"| **reference** | {_cell(system.references[row])} |"]
        for scored in result.systems:
            summary = scored.system.predictions[scored.system.keys.index(key)]
            lines.append(f"| {scored.name} | {_cell(summary)} |")
        lines.append("")
    return "\n".join(lines)


def comparison_json(result: Comparison, skipped: list[Skipped], recommendation: dict | None = None) -> dict:
    return {"n_examples": len(result.keys), "example_set_note": example_set_note(result),
            "bootstrap_samples": result.samples, "seed": result.seed, "confidence": 0.95,
            "paired_test": TEST_NAME, "alpha": ALPHA, "rank_key": RANK_KEY, "systems": system_rows(result),
            "pairs": result.pairs, "recommendation": recommendation,
            "skipped": [{"name": s.name, "reason": s.reason} for s in skipped],
            "warnings": [{"name": s.name, "warning": warning} for s in result.systems for warning in s.system.warnings]}


def write_reports(result: Comparison, skipped: list[Skipped], output_dir: str | Path, num_examples: int,
                  recommendation: dict | None = None) -> str:
    """Write comparison.md/.csv/.json and examples.md atomically, with the recommendation (`recommendation.recommend`)
    when given; return the Markdown report."""
    output_dir = Path(output_dir)
    markdown = comparison_markdown(result, skipped, recommendation)
    atomic_write_text(output_dir / "comparison.md", markdown)
    atomic_write_text(output_dir / "comparison.csv", pd.DataFrame(system_rows(result)).to_csv(index=False))
    write_json(output_dir / "comparison.json", comparison_json(result, skipped, recommendation))
    atomic_write_text(output_dir / "examples.md", examples_markdown(result, num_examples))
    return markdown
