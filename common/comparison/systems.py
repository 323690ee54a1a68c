"""Compare summarization systems on the same test examples: ROUGE, confidence intervals, paired tests.

`load_systems` reads run folders and classic CSVs (a bad one is skipped with its reason; a run.json
field of the wrong type is shown as a missing cost, with a warning),
`align_systems` keeps the examples common to all of them (by id, or by row order with matching
references), `add_lead3` adds the lead-3 baseline and `compare` scores everything.

Example:
    >>> systems, skipped = load_systems(["runs/lora", "runs/zero_shot"])
    >>> systems, common, more_skipped = align_systems(systems)
    >>> systems, lead3_skip = add_lead3(systems, common)
    >>> result = compare(systems, common, samples=1000, seed=0)
    >>> [row.name for row in result.systems]   # ranked by ROUGE-Lsum
    ['lora', 'lead3', 'zero_shot']
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runs.outputs import (PREDICTIONS_FILE, RUN_FILE, STOPPED, STOPPED_COLUMN, InputError, checked_run, csv_ids,
                            read_predictions_csv, read_run_json, text_column)
from ..scoring.baselines import lead3
from ..scoring.rouge import ROUGE_KEYS, clean_prediction, mean_words, rouge_per_example
from ..scoring.stats import bootstrap_ci, paired_permutation_test

BASELINE_METHODS = ("zero_shot", "lead3")
LEAD3_NAME = "lead3"  # the baseline's name; an input of that name is renamed (`input_name`)
RANK_KEY = "rougeLsum"
ALPHA = 0.05


@dataclass
class System:
    """One system's test predictions; `keys` name its examples (ids, or ids borrowed by row order);
    `warnings` name run.json fields that could not be used (shown as missing costs)."""

    name: str
    method: str
    source: str
    references: list[str]
    predictions: list[str]
    articles: list[str] | None = None
    ids: list[str] | None = None
    run: dict = field(default_factory=dict)
    keys: list[str] | None = None
    warnings: list[str] = field(default_factory=list)
    cut: list[bool] | None = None  # per prediction: cut at max_new_tokens (CSV column `Stopped`), when known

    @property
    def is_baseline(self) -> bool:
        return self.method in BASELINE_METHODS


@dataclass
class Skipped:
    name: str
    reason: str


@dataclass
class Scored:
    """A system scored on the common examples: per-example F1 x 100 (n, 4), means and 95% CIs."""

    system: System
    scores: np.ndarray
    means: dict[str, float]
    ci: dict[str, tuple[float, float]]
    empty_predictions: int
    mean_words: tuple[float, float]
    cut_share: float | None = None  # share of these predictions cut at max_new_tokens; None: unknown

    @property
    def name(self) -> str:
        return self.system.name


@dataclass
class Comparison:
    systems: list[Scored]
    pairs: list[dict]
    keys: list[str]
    samples: int
    seed: int


def load_system(path: str | Path) -> System:
    """A run folder (predictions_test.csv + run.json) or a prediction CSV of either layout.

    Example:
        >>> load_system("runs/lora").method, load_system("old/preds.csv").method
        ('lora', 'unknown')
    """
    path = Path(path)
    if path.is_dir():
        run, warnings = checked_run(read_run_json(path / RUN_FILE), path / RUN_FILE)
        csv_path, name, method = path / PREDICTIONS_FILE, path.name, run["method"] or "unknown"
    else:
        run, warnings, csv_path, method = {}, [], path, "unknown"
        name = path.parent.name if path.stem == Path(PREDICTIONS_FILE).stem else path.stem
    frame = read_predictions_csv(csv_path)
    articles = text_column(frame, "Article") if "Article" in frame.columns else None
    ids = csv_ids(frame, csv_path)
    return System(name=name, method=method, source=str(path), references=text_column(frame, "Actual Summary"),
                  predictions=[clean_prediction(p) for p in frame["Predicted Summary"].tolist()],
                  articles=articles, ids=ids, run=run, keys=ids, warnings=warnings, cut=cut_flags(frame, csv_path))


def cut_flags(frame, csv_path) -> list[bool] | None:
    """The `Stopped` column as booleans (True: cut at max_new_tokens), or None when the CSV has none.

    Example:
        >>> import pandas as pd
        >>> cut_flags(pd.DataFrame({"Stopped": ["eos", "limit"]}), "p.csv")
        [False, True]
    """
    if STOPPED_COLUMN not in frame.columns:
        return None
    values = {value: cut for cut, value in STOPPED.items()}
    column = text_column(frame, STOPPED_COLUMN)
    wrong = [row for row, value in enumerate(column, start=2) if value not in values]
    if wrong:
        raise InputError(f"{csv_path}: column {STOPPED_COLUMN!r} must hold {sorted(values)}; line {wrong[0]} holds "
                         f"{column[wrong[0] - 2]!r} (fix or delete the column)")
    return [values[value] for value in column]


def load_systems(paths: list[str | Path], names: list[str] | None = None) -> tuple[list[System], list[Skipped]]:
    """Every loadable system and the skipped ones with their reasons.

    Systems are named by `names` (default: each folder's name, or the CSV's name without `.csv`, or
    its folder's for a `predictions_test.csv`), made unique with `-2`, `-3`, ...; an input named
    `lead3` becomes `lead3 (run)`, so it is never mistaken for the lead-3 baseline.

    Example:
        >>> systems, skipped = load_systems(["runs/lora", "runs/broken"])
        >>> skipped[0].reason
        'runs/broken/predictions_test.csv: file not found'
        >>> [s.name for s in load_systems(["runs/neo/lora", "runs/lead3"], ["neo/lora", "lead3"])[0]]
        ['neo/lora', 'lead3 (run)']
    """
    systems, skipped = [], []
    for path, name in zip(paths, names or [None] * len(paths)):
        try:
            system = load_system(path)
        except InputError as error:
            skipped.append(Skipped(input_name(name or Path(path).name), str(error)))
            continue
        system.name = unique_name(input_name(name or system.name), {s.name for s in systems})
        systems.append(system)
    return systems, skipped


def input_name(name: str) -> str:
    """`name`, unless it is the lead-3 baseline's: then `lead3 (run)`.

    Example:
        >>> input_name("lead3"), input_name("lora")
        ('lead3 (run)', 'lora')
    """
    return f"{name} (run)" if name == LEAD3_NAME else name


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`, ... if taken.

    Example:
        >>> unique_name("lora", {"lora", "lora-2"})
        'lora-3'
    """
    candidates = itertools.chain([name], (f"{name}-{i}" for i in itertools.count(2)))
    return next(c for c in candidates if c not in taken)


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def assign_keys(systems: list[System]) -> tuple[list[System], list[Skipped]]:
    """Give each system example keys: its ids, or (no id column) the ids of the first system with ids
    whose references match row by row, or `row-<i>` when no system has ids.

    Example:
        >>> [s.keys for s in assign_keys([with_ids_a_b, classic_same_refs])[0]]
        [['a', 'b'], ['a', 'b']]
    """
    template = next((s for s in systems if s.ids is not None), None)
    kept, skipped = [], []
    for system in systems:
        if system.ids is not None:
            system.keys = system.ids
        elif template is None:
            system.keys = [f"row-{i}" for i in range(len(system.references))]
        elif len(system.references) == len(template.references) and all(
                map(_same_text, system.references, template.references)):
            system.keys = template.ids
        else:
            skipped.append(Skipped(system.name, f"{system.source}: no id column, and its {len(system.references)} "
                                   f"references do not match {template.name}'s {len(template.references)} row by "
                                   "row, so it cannot be paired by row order"))
            continue
        kept.append(system)
    return kept, skipped


def _reference_conflict(system: System, references: dict[str, str]) -> str | None:
    """The first key whose reference differs from the one already seen, if any."""
    return next((key for key, ref in zip(system.keys, system.references)
                 if key in references and not _same_text(ref, references[key])), None)


def align_systems(systems: list[System]) -> tuple[list[System], list[str], list[Skipped]]:
    """The systems that can be compared, the example keys common to all of them (in the first
    system's order) and the skipped ones: a system whose reference for an example differs from an
    earlier system's, or that shares no example with them, is left out.

    Example:
        >>> kept, common, skipped = align_systems([ids_a_b_c, ids_b_c_d])
        >>> common
        ['b', 'c']
    """
    systems, skipped = assign_keys(systems)
    kept, common, references = [], None, {}
    for system in systems:
        conflict = _reference_conflict(system, references)
        shared = set(system.keys) if common is None else common & set(system.keys)
        if conflict is not None:
            skipped.append(Skipped(system.name, f"{system.source}: its reference for example '{conflict}' differs "
                                   f"from {kept[0].name}'s; refusing to pair systems scored against "
                                   "different references"))
        elif not shared:
            skipped.append(Skipped(system.name, f"{system.source}: shares no example with {[s.name for s in kept]}"))
        else:
            kept.append(system)
            common = shared
            references.update(zip(system.keys, system.references))
    order = [key for key in kept[0].keys if key in common] if kept else []
    return kept, order, skipped


def add_lead3(systems: list[System], keys: list[str]) -> tuple[list[System], Skipped | None]:
    """The systems plus lead-3 over `keys`, built from the first system that has articles.

    Example:
        >>> systems, skipped = add_lead3([lora], ["test-0"])
        >>> systems[-1].name, systems[-1].is_baseline
        ('lead3', True)
    """
    source = next((s for s in systems if s.articles is not None), None)
    if source is None:
        return systems, Skipped("lead3", "no input has an Article column to take the first three sentences from")
    rows = {key: i for i, key in enumerate(source.keys)}
    articles = [source.articles[rows[key]] for key in keys]
    references = [source.references[rows[key]] for key in keys]
    baseline = System(name=LEAD3_NAME, method="lead3", source=f"first 3 sentences of {source.name}'s Article column",
                      references=references, predictions=[lead3(a) for a in articles], articles=articles,
                      ids=list(keys), keys=list(keys))
    baseline.name = unique_name(LEAD3_NAME, {s.name for s in systems})
    return [*systems, baseline], None


def score_system(system: System, keys: list[str], samples: int, seed: int) -> Scored:
    """ROUGE per example on `keys`, the means and bootstrap CIs, empty predictions and mean lengths.

    Example:
        >>> score_system(lora, ["test-0", "test-1"], samples=1000, seed=0).means["rougeLsum"]
        21.4
    """
    rows = {key: i for i, key in enumerate(system.keys)}
    predictions = [system.predictions[rows[key]] for key in keys]
    references = [system.references[rows[key]] for key in keys]
    per_example = rouge_per_example(predictions, references)
    scores = np.array([[example[k] for k in ROUGE_KEYS] for example in per_example])
    intervals = bootstrap_ci(scores, samples, seed)
    cut = None if system.cut is None else float(np.mean([system.cut[rows[key]] for key in keys]))
    return Scored(system=system, scores=scores,
                  means={k: float(m) for k, m in zip(ROUGE_KEYS, scores.mean(axis=0))},
                  ci={k: (float(lo), float(hi)) for k, (lo, hi) in zip(ROUGE_KEYS, intervals)},
                  empty_predictions=sum(not p.strip() for p in predictions),
                  mean_words=(mean_words(predictions), mean_words(references)), cut_share=cut)


def compare_pair(a: Scored, b: Scored, samples: int, seed: int) -> dict:
    """Mean difference a - b and the paired permutation p-value for each ROUGE key.

    Example:
        >>> compare_pair(lora, lora, samples=1000, seed=0)["p_value"]["rougeLsum"]
        1.0
    """
    differences = a.scores - b.scores
    p_values = {k: paired_permutation_test(differences[:, i], samples, seed) for i, k in enumerate(ROUGE_KEYS)}
    return {"a": a.name, "b": b.name, "n": len(differences),
            "difference": {k: float(differences[:, i].mean()) for i, k in enumerate(ROUGE_KEYS)},
            "p_value": p_values, "significant": [k for k in ROUGE_KEYS if p_values[k] < ALPHA]}


def compare(systems: list[System], keys: list[str], samples: int, seed: int) -> Comparison:
    """Score every system on `keys`, rank by ROUGE-Lsum and test every pair.

    Example:
        >>> compare([lora, zero_shot], ["test-0"], samples=1000, seed=0).pairs[0]["a"]
        'lora'
    """
    scored = sorted((score_system(s, keys, samples, seed) for s in systems), key=lambda s: -s.means[RANK_KEY])
    pairs = [compare_pair(a, b, samples, seed) for a, b in itertools.combinations(scored, 2)]
    return Comparison(systems=scored, pairs=pairs, keys=list(keys), samples=samples, seed=seed)
