"""ROUGE-Lsum against a cost (trainable parameters, training time): one labelled point per trained
system with its 95% CI, baselines as horizontal lines; pareto.png draws both costs side by side and marks the
Pareto front (`recommendation.pareto_front`). Learning curves: dev ROUGE-Lsum during training
from each run.json's `learning_curve`. Saved atomically (temp PNG + os.replace).

Example (rows as `report.system_rows` makes them, a run.json `learning_curve`; a temporary folder instead of
runs/comparison):
    >>> import tempfile
    >>> rows = [{"system": "lora", "baseline": False, "rougeLsum": 21.4, "rougeLsum_ci_low": 19.8,
    ...          "rougeLsum_ci_high": 23.0, "trainable": 36864, "train_time_s": 95.0},
    ...         {"system": "lead3", "baseline": True, "rougeLsum": 20.1, "rougeLsum_ci_low": 18.9,
    ...          "rougeLsum_ci_high": 21.3, "trainable": None, "train_time_s": None}]
    >>> curve = {"dev_examples": 8, "points": [{"examples_seen": 0, "train_seconds": 0.0, "rougeLsum": 9.5},
    ...                                        {"examples_seen": 80, "train_seconds": 30.0, "rougeLsum": 18.2}]}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [path.name for path in write_plots(rows, tmp)]
    ...     write_pareto_plot(rows, tmp).name
    ...     write_learning_curves({"lora": curve}, tmp).name
    ...     write_learning_curves({"lora": {"dev_examples": 0, "points": []}}, tmp)   # nothing to draw: removed
    ...     sorted(path.name for path in Path(tmp).iterdir())
    ['rouge_vs_trainable_params.png', 'rouge_vs_train_time.png']
    'pareto.png'
    'learning_curves.png'
    ['pareto.png', 'rouge_vs_train_time.png', 'rouge_vs_trainable_params.png']
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from ..core.atomic import atomic_write  # noqa: E402
from .recommendation import cost as system_cost  # noqa: E402
from .recommendation import pareto_front  # noqa: E402
from .systems import RANK_KEY  # noqa: E402

PLOTS = {"rouge_vs_trainable_params.png": ("trainable", "trainable parameters (log scale)"),
         "rouge_vs_train_time.png": ("train_time_s", "training time, s (optimizer steps only, log scale)")}


def plotted_points(rows: list[dict], cost: str) -> list[dict]:
    """Trained (non-baseline) rows with a positive, finite `cost` (a log axis cannot show 0).

    Example:
        >>> rows = [{"system": "lora", "baseline": False, "trainable": 36864},
        ...         {"system": "finetune", "baseline": False, "trainable": float("nan")},
        ...         {"system": "zero_shot", "baseline": True, "trainable": 0}]
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


# The Pareto plot: both costs side by side, the front marked.

PARETO_FILE = "pareto.png"


def _marker(on_front: bool) -> dict:
    return ({"fmt": "*", "markersize": 14, "color": "C3"} if on_front else {"fmt": "o", "markersize": 6, "color": "C0"})


def pareto_panel(ax, rows: list[dict], key: str, xlabel: str) -> None:
    """One cost: trained systems with their 95% CI (stars on the Pareto front, joined by its steps; dots
    dominated), baselines as dashed lines (they train nothing, which a log axis cannot place), and the systems
    that record no such cost named under the axis."""
    front, labelled = set(pareto_front(rows, key)), set()
    points = plotted_points(rows, key)
    for row in points:
        on_front = row["system"] in front
        label = ("on the Pareto front" if on_front else "dominated") if on_front not in labelled else None
        labelled.add(on_front)
        y, low, high = row[RANK_KEY], row[f"{RANK_KEY}_ci_low"], row[f"{RANK_KEY}_ci_high"]
        ax.errorbar([row[key]], [y], yerr=[[y - low], [high - y]], capsize=4, label=label, **_marker(on_front))
        ax.annotate(row["system"], (row[key], y), textcoords="offset points", xytext=(6, 6))
    edge = sorted((row[key], row[RANK_KEY]) for row in points if row["system"] in front)
    if len(edge) > 1:
        ax.step(*zip(*edge), where="post", color="C3", alpha=0.4)
    for index, row in enumerate(r for r in rows if r["baseline"]):
        where = ", on the front" if row["system"] in front else ""
        ax.axhline(row[RANK_KEY], linestyle="--", color=f"C{(index + 4) % 10}",
                   label=f"{row['system']} {row[RANK_KEY]:.1f} (baseline, trains nothing{where})")
    if points:
        ax.set_xscale("log")
    ax.margins(x=0.1, y=0.1)  # room for the names above the points
    unknown = [row["system"] for row in rows if system_cost(row, key) is None]
    ax.set_xlabel(xlabel + (f"\nnot shown (none recorded): {', '.join(unknown)}" if unknown else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")


def pareto_figure(rows: list[dict]):
    """ROUGE-Lsum against trainable parameters and against training time, the Pareto front marked in each."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, (key, xlabel) in zip(axes, PLOTS.values()):
        pareto_panel(ax, rows, key, xlabel)
    axes[0].set_ylabel("ROUGE-Lsum F1 x 100 (95% CI)")
    fig.suptitle("The Pareto front: no other system has a higher mean ROUGE-Lsum at no more cost "
                 "(means; the CIs say how sure)", fontsize="medium")
    fig.tight_layout()
    return fig


def write_pareto_plot(rows: list[dict], output_dir: str | Path) -> Path:
    """pareto.png in `output_dir`; returns its path."""
    path = Path(output_dir) / PARETO_FILE
    save_figure_atomic(pareto_figure(rows), path)
    return path


# Learning curves: dev ROUGE-Lsum during training, from run.json's `learning_curve` (common/training/callbacks.py).

LEARNING_CURVES_FILE = "learning_curves.png"
CURVE_AXES = (("examples_seen", 1.0, "training examples seen"),
              ("train_seconds", 1 / 60, "training wall time, min (training steps only)"))
REFERENCE_LINES = (("zero_shot", "zero-shot", "tab:gray", "--"), ("lead3", "lead-3", "black", "-."))


def usable_curve(curve) -> bool:
    """A run.json `learning_curve` that can be drawn: dev_examples > 0 and points with a number for ROUGE-Lsum."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return (isinstance(curve, dict) and isinstance(curve.get("dev_examples"), int) and curve["dev_examples"] > 0
            and isinstance(curve.get("points"), list) and bool(curve["points"])
            and all(isinstance(p, dict) and number(p.get(RANK_KEY)) for p in curve["points"]))


def reference_lines(curves: dict[str, dict]) -> list[tuple[str, float, str, str]]:
    """(label, ROUGE-Lsum, color, linestyle) of the zero-shot and lead-3 lines: one line when every run
    scored the same value, else one per run in the run's color (e.g. runs on different base models).

    Example:
        >>> reference_lines({"lora": {"zero_shot": {"rougeLsum": 9.5}, "lead3": None}})
        [('zero-shot 9.5', 9.5, 'tab:gray', '--')]
    """
    lines = []
    for key, title, color, style in REFERENCE_LINES:
        values = {label: curve[key][RANK_KEY] for label, curve in curves.items()
                  if isinstance(curve.get(key), dict) and isinstance(curve[key].get(RANK_KEY), (int, float))}
        if len(set(values.values())) == 1:
            value = next(iter(values.values()))
            lines.append((f"{title} {value:.1f}", value, color, style))
        else:
            lines += [(f"{title} ({label}) {value:.1f}", value, f"C{list(curves).index(label) % 10}", style)
                      for label, value in values.items()]
    return lines


def learning_curve_figure(curves: dict[str, dict]):
    """Two panels side by side: dev ROUGE-Lsum against training examples seen and against training minutes,
    one line per run (`curves`: {label: learning_curve}); zero-shot and lead-3 as dashed lines when every
    run was scored on the same number of dev examples (else the title says they differ)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    sizes = sorted({curve["dev_examples"] for curve in curves.values()})
    for ax, (key, scale, xlabel) in zip(axes, CURVE_AXES):
        for index, (label, curve) in enumerate(curves.items()):
            points = [p for p in curve["points"] if isinstance(p.get(key), (int, float))]
            ax.plot([p[key] * scale for p in points], [p[RANK_KEY] for p in points], marker="o",
                    color=f"C{index % 10}", label=label)
        for label, value, color, style in reference_lines(curves) if len(sizes) == 1 else []:
            ax.axhline(value, color=color, linestyle=style, linewidth=1, label=label)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("dev ROUGE-Lsum F1 x 100")
    axes[0].legend(loc="best", fontsize="small")
    if len(sizes) == 1:
        fig.suptitle(f"Dev ROUGE-Lsum during training (first {sizes[0]} validation examples)")
    else:
        fig.suptitle("Dev ROUGE-Lsum during training; the runs scored different numbers of validation examples "
                     f"({', '.join(map(str, sizes))}), so no zero-shot or lead-3 line is drawn", fontsize="medium")
    fig.tight_layout()
    return fig


def write_learning_curves(curves: dict[str, dict], output_dir: str | Path) -> Path | None:
    """learning_curves.png from the usable `curves` ({label: run.json learning_curve}); None when there is
    none, and then a learning_curves.png left by an earlier comparison is removed, as it would show other runs."""
    curves = {label: curve for label, curve in curves.items() if usable_curve(curve)}
    path = Path(output_dir) / LEARNING_CURVES_FILE
    if not curves:
        path.unlink(missing_ok=True)
        return None
    save_figure_atomic(learning_curve_figure(curves), path)
    return path
