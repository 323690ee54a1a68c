"""ROUGE-Lsum against a cost (trainable parameters, training time): one labelled point per trained
system with its 95% CI, baselines as horizontal lines. Saved atomically (temp PNG + os.replace).

Example:
    >>> write_plots(system_rows(result), "runs/comparison")
    ['runs/comparison/rouge_vs_trainable_params.png', 'runs/comparison/rouge_vs_train_time.png']
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from .evaluation import RANK_KEY  # noqa: E402
from .files import atomic_write  # noqa: E402

PLOTS = {"rouge_vs_trainable_params.png": ("trainable", "trainable parameters (log scale)"),
         "rouge_vs_train_time.png": ("train_wall_time_s", "training wall time, s (log scale)")}


def plotted_points(rows: list[dict], cost: str) -> list[dict]:
    """Trained (non-baseline) rows with a positive, finite `cost` (a log axis cannot show 0).

    Example:
        >>> [r["system"] for r in plotted_points(rows, "trainable")]
        ['lora']
    """
    def usable(value) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    return [row for row in rows if not row["baseline"] and usable(row.get(cost))]


def cost_figure(rows: list[dict], cost: str, xlabel: str):
    """The figure: error-bar points for trained systems, dashed lines for baselines."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = plotted_points(rows, cost)
    for row in points:
        y, low, high = row[RANK_KEY], row[f"{RANK_KEY}_ci_low"], row[f"{RANK_KEY}_ci_high"]
        ax.errorbar([row[cost]], [y], yerr=[[y - low], [high - y]], fmt="o", capsize=4)
        ax.annotate(row["system"], (row[cost], y), textcoords="offset points", xytext=(6, 6))
    for index, row in enumerate(r for r in rows if r["baseline"]):
        ax.axhline(row[RANK_KEY], linestyle="--", color=f"C{(index + len(points)) % 10}",
                   label=f"{row['system']} (baseline) {row[RANK_KEY]:.1f}")
    if points:
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no trained system reports this cost", ha="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ROUGE-Lsum F1 x 100 (95% CI)")
    ax.set_title(f"ROUGE-Lsum vs {xlabel.split(' (')[0]}")
    if any(r["baseline"] for r in rows):
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def save_figure_atomic(fig, path: str | Path) -> None:
    """savefig to a temporary PNG in the same folder, then rename over `path`."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)


def write_plots(rows: list[dict], output_dir: str | Path) -> list[Path]:
    """Both cost plots; returns their paths."""
    paths = []
    for name, (cost, xlabel) in PLOTS.items():
        save_figure_atomic(cost_figure(rows, cost, xlabel), Path(output_dir) / name)
        paths.append(Path(output_dir) / name)
    return paths
