"""The answer as a sentence and a picture: the Pareto fronts and the recommendation paragraph, written from the
ranked rows (`report.system_rows`) and the paired tests of a `Comparison`, never by hand, so that the paragraph
claims only what the confidence intervals and the tests carry.

Definitions, all on ROUGE-Lsum (the ranking key); "significantly" means p < ALPHA in the comparison's two-sided
paired permutation test, with no correction for multiple comparisons:

- the baselines (zero-shot, lead-3) train nothing: 0 trainable parameters and 0 s of training;
- best quality: the top-ranked system, baselines included, and whether it is significantly better than the
  runner-up;
- best within 1% of the parameters: the top-ranked trained system whose trainable parameters are at most 1% of
  the largest trained system's count (full fine-tuning's, when it was compared); baselines are left out, as
  they fit any budget;
- cheapest not significantly worse than the best: of the systems that are the best or not significantly worse
  than it and record a training time, the one with the least (optimizer steps only; ties go to the higher
  rank); when that is a baseline, the cheapest trained one is named too;
- Pareto front: the systems with a known cost that no other system matches or beats on both ROUGE-Lsum and the
  cost while beating it on one (means: a point estimate, not a test).

Example (rows and pairs as `report.system_rows` and `systems.compare_pair` make them, here by hand):
    >>> def row(name, rouge, trainable, seconds, baseline=False):
    ...     return {"system": name, "baseline": baseline, "rougeLsum": rouge, "rougeLsum_ci_low": rouge - 1,
    ...             "rougeLsum_ci_high": rouge + 1, "trainable": trainable, "train_time_s": seconds}
    >>> rows = [row("lora", 30.0, 4_000_000, 600.0), row("soft_prompt", 29.5, 20_000, 300.0),
    ...         row("zero_shot", 25.0, 0, None, baseline=True)]
    >>> def pair(a, b, difference, p):
    ...     return {"a": a, "b": b, "difference": {"rougeLsum": difference}, "p_value": {"rougeLsum": p},
    ...             "significant": ["rougeLsum"] if p < ALPHA else []}
    >>> pairs = [pair("lora", "soft_prompt", 0.5, 0.4), pair("lora", "zero_shot", 5.0, 0.001),
    ...          pair("soft_prompt", "zero_shot", 4.5, 0.002)]
    >>> pareto_front(rows, "trainable"), pareto_front(rows, "train_time_s")
    (['lora', 'soft_prompt', 'zero_shot'], ['lora', 'soft_prompt', 'zero_shot'])
    >>> print(recommend(rows, pairs, 100, "cnn_dailymail[test]")["text"])
    On the 100 test examples common to all systems, from cnn_dailymail[test] (ROUGE-Lsum as mean [95% bootstrap CI];
    two-sided paired permutation tests at alpha 0.05, uncorrected for multiple comparisons): Best quality: **lora**,
    ROUGE-Lsum 30.0 [29.0, 31.0], but not significantly better than the runner-up **soft_prompt** (+0.50 points,
    p=0.4000). Not significantly worse than it: soft_prompt. The baselines (zero_shot) train nothing: 2 of 2 trained
    systems are significantly better than **zero_shot** (lora, soft_prompt). Best within 1% of the trainable parameters
    of the largest trained system (**lora**, 4M, so at most 40K): **soft_prompt** (20K trainable), ROUGE-Lsum 29.5
    [28.5, 30.5], not significantly worse than the best, **lora** (-0.50 points, p=0.4000). Cheapest not significantly
    worse than the best (**lora**, 10.0 min of training): **soft_prompt** (5.0 min of training; -0.50 points, p=0.4000).
    "Not significantly worse" means that the test cannot tell the two apart on these 100 examples, not that they are
    equal.
"""

from __future__ import annotations

import math

from .report import format_ci, human_count, human_seconds
from .systems import ALPHA, RANK_KEY, Comparison

BUDGET_SHARE = 0.01  # "best within 1% of the parameters"
COSTS = ("trainable", "train_time_s")  # the Pareto fronts' cost axes (report.system_row fields)


def paired(pairs: list[dict], a: str, b: str) -> tuple[float, float, bool]:
    """(ROUGE-Lsum difference a - b, p-value, significant at ALPHA) from the pair of `a` and `b`, either way round.

    Example:
        >>> paired([{"a": "lora", "b": "lead3", "difference": {"rougeLsum": 2.0}, "p_value": {"rougeLsum": 0.01},
        ...          "significant": ["rougeLsum"]}], "lead3", "lora")
        (-2.0, 0.01, True)
    """
    for pair in pairs:
        if {pair["a"], pair["b"]} == {a, b}:
            sign = 1.0 if pair["a"] == a else -1.0
            return sign * pair["difference"][RANK_KEY], pair["p_value"][RANK_KEY], RANK_KEY in pair["significant"]
    raise KeyError(f"no paired test between {a!r} and {b!r}")


def cost(row: dict, key: str) -> float | None:
    """The row's `key` cost: 0 for a baseline (it trains nothing), None where run.json records no usable number.

    Example:
        >>> cost({"baseline": True, "train_time_s": None}, "train_time_s")
        0.0
        >>> cost({"baseline": False, "trainable": 7}, "trainable"), cost({"baseline": False}, "trainable")
        (7.0, None)
    """
    if row["baseline"]:
        return 0.0
    value = row.get(key)
    usable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if usable else None


def pareto_front(rows: list[dict], key: str) -> list[str]:
    """Names, in rank order, of the systems with a known `key` cost that no other system dominates (ROUGE-Lsum
    >= and cost <=, one of them strictly). Systems without the cost are on no front.

    Example (b is beaten by a on both; c costs nothing; d records no cost):
        >>> rows = [{"system": s, "baseline": s == "c", "rougeLsum": r, "trainable": t}
        ...         for s, r, t in (("a", 30, 10), ("b", 20, 50), ("c", 10, None), ("d", 40, None))]
        >>> pareto_front(rows, "trainable")
        ['a', 'c']
    """
    points = [(row["system"], cost(row, key), row[RANK_KEY]) for row in rows if cost(row, key) is not None]
    return [name for name, spent, score in points
            if not any(other <= spent and better >= score and (other < spent or better > score)
                       for _, other, better in points)]


def not_worse(rows: list[dict], pairs: list[dict], best: dict) -> list[dict]:
    """The rows other than `best` that are not significantly worse than it, in rank order.

    Example:
        >>> rows = [{"system": "a"}, {"system": "b"}]
        >>> not_worse(rows, [{"a": "a", "b": "b", "difference": {"rougeLsum": 1.0}, "p_value": {"rougeLsum": 0.3},
        ...                   "significant": []}], rows[0])
        [{'system': 'b'}]
    """
    return [row for row in rows if row is not best and not paired(pairs, best["system"], row["system"])[2]]


def within_budget(rows: list[dict], share: float = BUDGET_SHARE) -> tuple[dict | None, list[dict]]:
    """The trained row with the most trainable parameters (the reference) and the trained rows with at most
    `share` of its count, in rank order.

    Example:
        >>> rows = [{"system": s, "baseline": False, "trainable": t}
        ...         for s, t in (("ft", 1000), ("lora", 9), ("ia3", 20))]
        >>> reference, fitting = within_budget(rows)
        >>> reference["system"], [row["system"] for row in fitting]
        ('ft', ['lora'])
    """
    counted = [row for row in rows if not row["baseline"] and cost(row, "trainable") is not None]
    if not counted:
        return None, []
    reference = max(counted, key=lambda row: row["trainable"])
    return reference, [row for row in counted if row["trainable"] <= share * reference["trainable"]]


def cheapest(rows: list[dict]) -> dict | None:
    """The row with the least training time (baselines: 0); the higher rank wins a tie; None if none records one.

    Example:
        >>> cheapest([{"system": "a", "baseline": False, "train_time_s": 9.0},
        ...           {"system": "b", "baseline": False, "train_time_s": 3.0}])["system"]
        'b'
    """
    timed = [row for row in rows if cost(row, "train_time_s") is not None]
    return min(timed, key=lambda row: cost(row, "train_time_s")) if timed else None


def _bold(row: dict) -> str:
    return f"**{row['system']}**"


def _ci(row: dict) -> str:
    return format_ci(row[RANK_KEY], row[f"{RANK_KEY}_ci_low"], row[f"{RANK_KEY}_ci_high"])


def _against(pairs: list[dict], a: dict, b: dict) -> str:
    """'+1.20 points, p=0.0100': a - b in ROUGE-Lsum and the paired test's p-value."""
    difference, p_value, _ = paired(pairs, a["system"], b["system"])
    return f"{difference:+.2f} points, p={p_value:.4f}"


def _names(rows: list[dict]) -> str:
    return ", ".join(row["system"] for row in rows)


def scope_sentence(n_examples: int, test_set: str) -> str:
    """What the paragraph is about: the examples, the test set, the statistics."""
    return (f"On the {n_examples} test examples common to all systems, from {test_set} (ROUGE-Lsum as mean [95% "
            f"bootstrap CI]; two-sided paired permutation tests at alpha {ALPHA}, uncorrected for multiple "
            "comparisons):")


def best_sentences(rows: list[dict], pairs: list[dict]) -> str:
    """The best system, whether it is significantly better than the runner-up, and which systems it does not beat."""
    best = rows[0]
    kind = " (a baseline that trains nothing)" if best["baseline"] else ""
    if len(rows) == 1:
        return f"Only {_bold(best)}{kind} was compared ({_ci(best)}): there is nothing to rank it against."
    runner_up = rows[1]
    verdict = ("significantly better than" if paired(pairs, best["system"], runner_up["system"])[2]
               else "but not significantly better than")
    text = (f"Best quality: {_bold(best)}{kind}, ROUGE-Lsum {_ci(best)}, {verdict} the runner-up {_bold(runner_up)} "
            f"({_against(pairs, best, runner_up)}).")
    tied = not_worse(rows, pairs, best)
    return text + (f" Not significantly worse than it: {_names(tied)}." if tied
                   else " Every other system is significantly worse.")


def baseline_clause(rows: list[dict], pairs: list[dict], baseline: dict) -> str:
    """How many trained systems are significantly better (and worse) than `baseline`."""
    trained = [row for row in rows if not row["baseline"]]
    tests = [(row, *paired(pairs, row["system"], baseline["system"])) for row in trained]
    better = [row for row, difference, _, significant in tests if significant and difference > 0]
    worse = [row for row, difference, _, significant in tests if significant and difference < 0]
    clause = (f"{len(better)} of {len(trained)} trained systems {_is(better)} significantly better than "
              f"{_bold(baseline)} ({_names(better)})" if better
              else f"no trained system is significantly better than {_bold(baseline)}")
    return clause + (f" and {len(worse)} {_is(worse)} significantly worse ({_names(worse)})" if worse else "")


def _is(rows: list) -> str:
    return "is" if len(rows) == 1 else "are"


def baseline_sentence(rows: list[dict], pairs: list[dict]) -> str:
    """The trained systems against each baseline ('' when there is no baseline or no trained system)."""
    baselines = [row for row in rows if row["baseline"]]
    if not baselines or all(row["baseline"] for row in rows):
        return "" if not baselines else "No trained system was compared."
    clauses = "; ".join(baseline_clause(rows, pairs, baseline) for baseline in baselines)
    return f"The baselines ({_names(baselines)}) train nothing: {clauses}."


def budget_sentence(rows: list[dict], pairs: list[dict], share: float = BUDGET_SHARE) -> str:
    """The best trained system within `share` of the largest trained system's trainable parameters."""
    reference, fitting = within_budget(rows, share)
    if reference is None:
        return ("No trained system records its trainable parameters." if any(not row["baseline"] for row in rows)
                else "")
    percent = f"{100 * share:g}%"
    scope = (f"the trainable parameters of the largest trained system ({_bold(reference)}, "
             f"{human_count(reference['trainable'])}, so at most {human_count(share * reference['trainable'])})")
    if not fitting:
        return f"No trained system is within {percent} of {scope}."
    choice, best = fitting[0], rows[0]
    head = (f"Best within {percent} of {scope}: {_bold(choice)} ({human_count(choice['trainable'])} trainable), "
            f"ROUGE-Lsum {_ci(choice)}")
    if choice is best:
        return head + ", the best system overall."
    verdict = "significantly" if paired(pairs, choice["system"], best["system"])[2] else "not significantly"
    return head + f", {verdict} worse than the best, {_bold(best)} ({_against(pairs, choice, best)})."


def _spent(row: dict) -> str:
    """'12.0 s of training', or that a baseline trains nothing."""
    return "trains nothing" if row["baseline"] else f"{human_seconds(row['train_time_s'])} of training"


def cheapest_sentence(rows: list[dict], pairs: list[dict]) -> str:
    """The system with the least training time among those not significantly worse than the best."""
    if len(rows) == 1:
        return ""
    best = rows[0]
    candidates = [best, *not_worse(rows, pairs, best)]
    choice = cheapest(candidates)
    untimed = [row for row in candidates if cost(row, "train_time_s") is None]
    left_out = f" ({_names(untimed)}: no training time recorded, left out)" if untimed else ""
    if choice is None:
        return f"No system that is not significantly worse than the best records its training time{left_out}."
    if choice is best and best["baseline"]:
        return f"Cheapest not significantly worse than the best: {_bold(best)} itself, which trains nothing."
    if choice is best:
        return (f"Cheapest not significantly worse than the best: {_bold(best)} itself ({_spent(best)}); every "
                f"system that records less training time is significantly worse{left_out}.")
    best_cost = "training time not recorded" if cost(best, "train_time_s") is None else _spent(best)
    text = (f"Cheapest not significantly worse than the best ({_bold(best)}, {best_cost}): {_bold(choice)} "
            f"({_spent(choice)}; {_against(pairs, choice, best)})")
    trained = cheapest([row for row in candidates if not row["baseline"]]) if choice["baseline"] else None
    if trained is not None:
        text += ("; among trained systems, the best itself" if trained is best else
                 f"; among trained systems, {_bold(trained)} ({_spent(trained)}; {_against(pairs, trained, best)})")
    return text + f"{left_out}."


def caveat(n_examples: int) -> str:
    return (f"\"Not significantly worse\" means that the test cannot tell the two apart on these {n_examples} "
            "examples, not that they are equal.")


def recommend(rows: list[dict], pairs: list[dict], n_examples: int, test_set: str) -> dict:
    """The paragraph (`text`) and what it names, from ranked rows and paired tests (see the module doc)."""
    sentences = [scope_sentence(n_examples, test_set), best_sentences(rows, pairs), baseline_sentence(rows, pairs),
                 budget_sentence(rows, pairs), cheapest_sentence(rows, pairs)]
    if len(rows) > 1:
        sentences.append(caveat(n_examples))
    reference, fitting = within_budget(rows)
    choice = cheapest([rows[0], *not_worse(rows, pairs, rows[0])])
    return {"text": " ".join(s for s in sentences if s), "test_set": test_set, "alpha": ALPHA,
            "best": rows[0]["system"], "runner_up": rows[1]["system"] if len(rows) > 1 else None,
            "best_significantly_better_than_runner_up":
                paired(pairs, rows[0]["system"], rows[1]["system"])[2] if len(rows) > 1 else None,
            "budget_share": BUDGET_SHARE, "budget_reference": reference and reference["system"],
            "best_within_budget": fitting[0]["system"] if fitting else None,
            "cheapest_not_significantly_worse": choice and choice["system"],
            "pareto_front": {key: pareto_front(rows, key) for key in COSTS}}


def describe_test_set(result: Comparison) -> str:
    """The test set the systems were scored on, from each run.json's `examples.test.source`.

    Example:
        >>> from common.comparison.systems import System, compare
        >>> run = {"examples": {"test": {"source": "--test_file data/sample/test.jsonl"}}}
        >>> lora = System("lora", "lora", "runs/lora", ["The cat sat."], ["The cat sat."], keys=["a"], run=run)
        >>> describe_test_set(compare([lora], ["a"], samples=10, seed=0))
        'data/sample/test.jsonl'
    """
    sources = []
    for scored in result.systems:
        examples = scored.system.run.get("examples")
        test = examples.get("test") if isinstance(examples, dict) else None
        source = test.get("source") if isinstance(test, dict) else None
        if isinstance(source, str) and source.removeprefix("--test_file ") not in sources:
            sources.append(source.removeprefix("--test_file "))
    return " and ".join(sources) if sources else "the compared prediction files (no run.json names its test set)"
