"""Compare summarization systems on the same test examples: ROUGE, confidence intervals, paired tests.

`load_systems` reads run folders and classic CSVs (a bad one is skipped with its reason; a run.json
field of the wrong type is shown as a missing cost, with a warning),
`align_systems` keeps the examples common to all of them (by id, or by row order with matching
references), `add_lead3` adds the lead-3 baseline and `compare` scores everything.

Example (two systems built in memory; `load_systems(["runs/lora", "runs/zero_shot"])` reads them from run folders):
    >>> articles = ["Rain fell on Paris. Roads flooded. Schools shut. It stopped.", "The cat sat. It slept. It ate."]
    >>> references = ["Rain flooded Paris roads and shut schools.", "The cat sat and slept."]
    >>> lora = System("lora", "lora", "runs/lora", references, ["Rain flooded roads in Paris and shut schools.",
    ...               "The cat sat and slept."], articles=articles, ids=["a", "b"])
    >>> zero_shot = System("zero_shot", "zero_shot", "runs/zero_shot", references, ["It rained.", "A cat."],
    ...                    articles=articles, ids=["a", "b"])
    >>> systems, common, skipped = align_systems([zero_shot, lora])
    >>> systems, lead3_skip = add_lead3(systems, common)
    >>> result = compare(systems, common, samples=1000, seed=0)
    >>> [(s.name, round(s.means["rougeLsum"], 1)) for s in result.systems]   # ranked by ROUGE-Lsum
    [('lora', 90.0), ('lead3', 60.0), ('zero_shot', 25.4)]
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

    Example (a run folder and a classic CSV, written to a temporary folder):
        >>> import tempfile
        >>> import pandas as pd
        >>> from common.core.atomic import write_json
        >>> from common.runs.outputs import write_predictions_csv
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     write_predictions_csv(Path(tmp, "lora", PREDICTIONS_FILE), ["a"], ["Rain fell."], ["Rain."], ["Rain."])
        ...     write_json(Path(tmp, "lora", RUN_FILE), {"method": "lora"})
        ...     pd.DataFrame({"Predicted Summary": ["Rain."], "Actual Summary": ["Rain."]}).to_csv(
        ...         Path(tmp, "old.csv"), index=False)
        ...     [(s.name, s.method, s.ids) for s in (load_system(Path(tmp, "lora")), load_system(Path(tmp, "old.csv")))]
        [('lora', 'lora', ['a']), ('old', 'unknown', None)]
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

    Example (`broken` has its run.json but no predictions):
        >>> import tempfile
        >>> from common.core.atomic import write_json
        >>> from common.runs.outputs import write_predictions_csv
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     lora, broken = Path(tmp, "lora"), Path(tmp, "broken")
        ...     write_predictions_csv(lora / PREDICTIONS_FILE, ["a"], ["Rain fell."], ["Rain."], ["Rain."])
        ...     for run_dir in (lora, broken):
        ...         write_json(run_dir / RUN_FILE, {"method": "lora"})
        ...     systems, skipped = load_systems([lora, broken, lora])
        ...     [s.name for s in systems], skipped[0].reason.replace(tmp, "TMP")
        ...     [s.name for s in load_systems([lora, lora], ["neo/lora", "lead3"])[0]]
        (['lora', 'lora-2'], 'TMP/broken/predictions_test.csv: file not found')
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
        >>> with_ids = System("lora", "lora", "runs/lora", ["R1.", "R2."], ["P1.", "P2."], ids=["a", "b"])
        >>> classic = System("old", "unknown", "old.csv", ["R1.", "R2."], ["Q1.", "Q2."])  # no ids, same references
        >>> [s.keys for s in assign_keys([with_ids, classic])[0]]
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
        >>> first = System("first", "lora", "first/", ["R1.", "R2.", "R3."], ["P."] * 3, ids=["a", "b", "c"])
        >>> second = System("second", "lora", "second/", ["R2.", "R3.", "R4."], ["P."] * 3, ids=["b", "c", "d"])
        >>> other = System("other", "lora", "other/", ["R1, but not R1."], ["P."], ids=["a"])
        >>> kept, common, skipped = align_systems([first, second, other])
        >>> [s.name for s in kept], common, skipped[0].reason
        (['first', 'second'], ['b', 'c'], "other/: its reference for example 'a' differs from first's; refusing to
        pair systems scored against different references")
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
        >>> lora = System("lora", "lora", "runs/lora", ["Rain flooded Paris."], ["Rain."],
        ...               articles=["Rain fell. Roads flooded. Schools shut. It stopped."], ids=["a"], keys=["a"])
        >>> systems, skipped = add_lead3([lora], ["a"])
        >>> systems[-1].name, systems[-1].is_baseline, systems[-1].predictions, skipped
        ('lead3', True, ['Rain fell. Roads flooded. Schools shut.'], None)
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

    Example (one summary right, one half right):
        >>> lora = System("lora", "lora", "runs/lora", ["The cat sat.", "Rain fell."], ["The cat sat.", "Snow fell."],
        ...               keys=["a", "b"])
        >>> scored = score_system(lora, ["a", "b"], samples=1000, seed=0)
        >>> scored.means["rougeLsum"], scored.ci["rougeLsum"]
        (75.0, (50.0, 100.0))
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

    Example (a system against itself):
        >>> lora = System("lora", "lora", "runs/lora", ["The cat sat.", "Rain fell."], ["The cat sat.", "Snow fell."],
        ...               keys=["a", "b"])
        >>> scored = score_system(lora, ["a", "b"], samples=1000, seed=0)
        >>> pair = compare_pair(scored, scored, samples=1000, seed=0)
        >>> pair["difference"]["rougeLsum"], pair["p_value"]["rougeLsum"], pair["significant"]
        (0.0, 1.0, [])
    """
    differences = a.scores - b.scores
    p_values = {k: paired_permutation_test(differences[:, i], samples, seed) for i, k in enumerate(ROUGE_KEYS)}
    return {"a": a.name, "b": b.name, "n": len(differences),
            "difference": {k: float(differences[:, i].mean()) for i, k in enumerate(ROUGE_KEYS)},
            "p_value": p_values, "significant": [k for k in ROUGE_KEYS if p_values[k] < ALPHA]}


def compare(systems: list[System], keys: list[str], samples: int, seed: int) -> Comparison:
    """Score every system on `keys`, rank by ROUGE-Lsum and test every pair.

    Example:
        >>> references = ["The cat sat.", "Rain fell."]
        >>> lora = System("lora", "lora", "runs/lora", references, ["The cat sat.", "Rain fell."], keys=["a", "b"])
        >>> zero_shot = System("zero_shot", "zero_shot", "runs/zero_shot", references, ["A dog.", "Snow fell."],
        ...                    keys=["a", "b"])
        >>> result = compare([zero_shot, lora], ["a", "b"], samples=1000, seed=0)
        >>> [s.name for s in result.systems], (result.pairs[0]["a"], result.pairs[0]["b"])
        (['lora', 'zero_shot'], ('lora', 'zero_shot'))
    """
    scored = sorted((score_system(s, keys, samples, seed) for s in systems), key=lambda s: -s.means[RANK_KEY])
    pairs = [compare_pair(a, b, samples, seed) for a, b in itertools.combinations(scored, 2)]
    return Comparison(systems=scored, pairs=pairs, keys=list(keys), samples=samples, seed=seed)
