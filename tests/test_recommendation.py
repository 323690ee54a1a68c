"""The recommendation paragraph, the Pareto fronts and plot, and the PEFT-format results of evaluate_all.py, on
hand-made run folders whose per-example ROUGE-Lsum is known: each summary is the first k of the reference's 10
words (precision 1, recall k/10, F1 = 200k / (10 + k)), so a system's scores, differences and, where only one
example differs (every sign flip then ties the observed mean: p = 1) or every example differs by the same amount
(no flip reaches it: p = 1 / (1 + resamples)), its paired p-values are exact."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import evaluate_all
from common.comparison.recommendation import pareto_front, recommend

SAMPLES = 200
FAST = ["--bootstrap_samples", str(SAMPLES), "--allow_few_bootstrap_samples", "--seed", "3"]
N = 20
WORDS = "bravo charlie delta echo foxtrot golf hotel india juliet".split()
ARTICLE = "Kilo lima mike. November oscar papa. Quebec romeo sierra. Tango uniform victor."  # lead-3 scores 0
SCOPE = (f"On the {N} test examples common to all systems, from fixtures/test.jsonl (ROUGE-Lsum as mean [95% "
         "bootstrap CI]; two-sided paired permutation tests at alpha 0.05, uncorrected for multiple comparisons):")
CAVEAT = (f"\"Not significantly worse\" means that the test cannot tell the two apart on these {N} examples, not "
          "that they are equal.")


def reference(i: int) -> str:
    return " ".join([f"alpha{i}", *WORDS])


def first_words(k_by_example: dict[int, int], k: int = 10):
    """Predictions: the first k words of each reference (k_by_example overrides k for some examples)."""
    return lambda i: " ".join(reference(i).split()[:k_by_example.get(i, k)])


def run_json(method: str, trainable: int, train_time_s: float | None, **extra) -> dict:
    return {"method": method, "base_model": "tiny", "trainable": trainable, "total": 200_000,
            "trainable_percent": 100 * trainable / 200_000, "train_time_s": train_time_s, "train_steps": 10,
            "train_loss": 1.25, "train_tokens": 5000, "peak_memory": {"peak_rss_mib": 512.0},
            "saved_size_bytes": 4 * trainable, "generation_precision": "fp32", "config": {"method_name": method},
            "examples": {"test": {"source": "--test_file fixtures/test.jsonl", "rows": N, "used": N}},
            "versions": {"python": "3.11.7", "platform": "Linux-x86_64", "torch": "2.5.0", "peft": "0.15.0"},
            **extra}


def make_run(root, name: str, prediction, run: dict):
    folder = root / name
    folder.mkdir(parents=True)
    pd.DataFrame({"id": [f"ex-{i}" for i in range(N)], "Article": [ARTICLE] * N,
                  "Actual Summary": [reference(i) for i in range(N)],
                  "Predicted Summary": [prediction(i) for i in range(N)]}).to_csv(folder / "predictions_test.csv",
                                                                                  index=False)
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def compare(runs, out, *flags: str) -> dict:
    """evaluate_all.py on `runs`; returns comparison.json."""
    evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(out), *flags, *FAST])
    return json.loads((out / "comparison.json").read_text())


def ci_text(payload: dict, system: str) -> str:
    """The comparison's ROUGE-Lsum with its CI for `system`, as the paragraph writes it."""
    row = next(row for row in payload["systems"] if row["system"] == system)
    return f"{row['rougeLsum']:.1f} [{row['rougeLsum_ci_low']:.1f}, {row['rougeLsum_ci_high']:.1f}]"


def test_a_clear_winner(tmp_path, capsys):
    """lora 100 everywhere, soft_prompt 66.7, zero-shot 33.3, lead-3 0: every difference is the same on every
    example, so every pair is significant."""
    runs = tmp_path / "runs"
    make_run(runs, "lora", first_words({}), run_json("lora", 4000, 20.0))
    make_run(runs, "soft_prompt", first_words({}, k=5), run_json("soft_prompt", 20, 8.0))
    make_run(runs, "zero_shot", first_words({}, k=2), run_json("zero_shot", 0, None))
    payload = compare(runs, tmp_path / "out")
    p = f"p={1 / (1 + SAMPLES):.4f}"
    assert payload["recommendation"]["text"] == " ".join([
        SCOPE,
        f"Best quality: **lora**, ROUGE-Lsum 100.0 [100.0, 100.0], significantly better than the runner-up "
        f"**soft_prompt** (+33.33 points, {p}). Every other system is significantly worse.",
        "The baselines (zero_shot, lead3) train nothing: 2 of 2 trained systems are significantly better than "
        "**zero_shot** (lora, soft_prompt); 2 of 2 trained systems are significantly better than **lead3** "
        "(lora, soft_prompt).",
        "Best within 1% of the trainable parameters of the largest trained system (**lora**, 4K, so at most 40): "
        f"**soft_prompt** (20 trainable), ROUGE-Lsum 66.7 [66.7, 66.7], significantly worse than the best, "
        f"**lora** (-33.33 points, {p}).",
        "Cheapest not significantly worse than the best: **lora** itself (20.0 s of training); every system that "
        "records less training time is significantly worse.",
        CAVEAT])
    assert payload["recommendation"]["best_significantly_better_than_runner_up"] is True
    report, stdout = (tmp_path / "out" / "comparison.md").read_text(), capsys.readouterr().out
    assert f"## Recommendation\n\n{payload['recommendation']['text']}\n" in report and report in stdout


def test_best_not_significantly_better_and_no_trained_system_beats_zero_shot(tmp_path):
    """lora 100 everywhere; dora misses half a summary on one example, zero-shot most of one on another: each
    pair differs on one example (p = 1) or on two by different amounts (every flip reaches it: p = 1)."""
    runs = tmp_path / "runs"
    make_run(runs, "lora", first_words({}), run_json("lora", 4000, 20.0))
    make_run(runs, "dora", first_words({0: 5}), run_json("dora", 4100, 8.0))
    make_run(runs, "zero_shot", first_words({1: 2}), run_json("zero_shot", 0, None))
    recommendation = compare(runs, tmp_path / "out", "--no_lead3")["recommendation"]
    assert recommendation["text"] == " ".join([
        SCOPE,
        "Best quality: **lora**, ROUGE-Lsum 100.0 [100.0, 100.0], but not significantly better than the runner-up "
        "**dora** (+1.67 points, p=1.0000). Not significantly worse than it: dora, zero_shot.",
        "The baselines (zero_shot) train nothing: no trained system is significantly better than **zero_shot**.",
        "No trained system is within 1% of the trainable parameters of the largest trained system (**dora**, 4.1K, "
        "so at most 41).",
        "Cheapest not significantly worse than the best (**lora**, 20.0 s of training): **zero_shot** (trains "
        "nothing; -3.33 points, p=1.0000); among trained systems, **dora** (8.0 s of training; -1.67 points, "
        "p=1.0000).",
        CAVEAT])
    assert (recommendation["best"], recommendation["runner_up"]) == ("lora", "dora")
    assert recommendation["best_significantly_better_than_runner_up"] is False
    assert recommendation["cheapest_not_significantly_worse"] == "zero_shot"
    assert recommendation["best_within_budget"] is None and recommendation["budget_reference"] == "dora"


def cheap_runs(root):
    """lora 100; full_finetune 99.4 (one example at 8 words), the largest and faster than lora; soft_prompt 98.3
    (one example at 5 words), tiny and the fastest; zero-shot 33.3 everywhere; lead-3 0."""
    adapter = make_run(root, "lora", first_words({}), run_json("lora", 4000, 20.0)) / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    make_run(root, "full_finetune", first_words({1: 8}), run_json(
        "full_finetune", 200_000, 15.0, peak_memory={"peak_rss_mib": 900.0, "peak_cuda_allocated_mib": 1024.0}))
    make_run(root, "soft_prompt", first_words({0: 5}), run_json("soft_prompt", 20, 8.0))
    make_run(root, "zero_shot", first_words({}, k=2), run_json("zero_shot", 0, None))
    return root


def test_a_cheap_method_not_significantly_worse_and_the_pareto_fronts(tmp_path):
    out = tmp_path / "out"
    payload = compare(cheap_runs(tmp_path / "runs"), out)
    recommendation = payload["recommendation"]
    assert [row["system"] for row in payload["systems"]] == ["lora", "full_finetune", "soft_prompt", "zero_shot",
                                                             "lead3"]
    assert recommendation["text"] == " ".join([
        SCOPE,
        "Best quality: **lora**, ROUGE-Lsum 100.0 [100.0, 100.0], but not significantly better than the runner-up "
        "**full_finetune** (+0.56 points, p=1.0000). Not significantly worse than it: full_finetune, soft_prompt.",
        "The baselines (zero_shot, lead3) train nothing: 3 of 3 trained systems are significantly better than "
        "**zero_shot** (lora, full_finetune, soft_prompt); 3 of 3 trained systems are significantly better than "
        "**lead3** (lora, full_finetune, soft_prompt).",
        "Best within 1% of the trainable parameters of the largest trained system (**full_finetune**, 200K, so at "
        f"most 2K): **soft_prompt** (20 trainable), ROUGE-Lsum {ci_text(payload, 'soft_prompt')}, not "
        "significantly worse than the best, **lora** (-1.67 points, p=1.0000).",
        "Cheapest not significantly worse than the best (**lora**, 20.0 s of training): **soft_prompt** (8.0 s of "
        "training; -1.67 points, p=1.0000).",
        CAVEAT])
    assert recommendation["pareto_front"] == {"trainable": ["lora", "soft_prompt", "zero_shot"],
                                              "train_time_s": ["lora", "full_finetune", "soft_prompt", "zero_shot"]}
    assert (recommendation["best_within_budget"], recommendation["cheapest_not_significantly_worse"]) == (
        "soft_prompt", "soft_prompt")
    assert "by trainable parameters lora, soft_prompt, zero_shot; by training time lora, full_finetune, " \
           "soft_prompt, zero_shot." in (out / "comparison.md").read_text()
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_peft_format_results_map_run_json_fields_and_leave_the_unmeasured_null(tmp_path):
    out = tmp_path / "out"
    (out / "peft_results").mkdir(parents=True)
    (out / "peft_results" / "old--run.json").write_text("{}")  # from an earlier comparison: removed
    compare(cheap_runs(tmp_path / "runs"), out)
    files = sorted(path.name for path in (out / "peft_results").iterdir())
    assert files == ["full_finetune.json", "lora.json", "soft_prompt.json"]  # baselines are no PEFT results
    lora = json.loads((out / "peft_results" / "lora.json").read_text())
    assert lora["run_info"] == {"created_at": None, "total_time": None, "experiment_name": "lora",
                                "peft_branch": None, "train_config": {"model_id": "tiny", "method_name": "lora"},
                                "peft_config": {"peft_type": "LORA", "r": 8}, "error_msg": ""}
    info = lora["train_info"]
    assert {key: value for key, value in info.items() if key != "metrics"} == {
        "accelerator_memory_max": None, "accelerator_memory_reserved_avg": None,
        "accelerator_memory_reserved_99th": None, "train_time": 20.0, "file_size": 16000,
        "num_trainable_params": 4000, "num_total_params": 200_000, "status": "success"}
    assert info["metrics"] == [{
        "step": 10, "train loss": 1.25, "train samples": None, "train total tokens": 5000,
        "test set": "fixtures/test.jsonl", "test examples": N,
        **{key: pytest.approx(100.0) for key in ("test rouge1", "test rouge2", "test rougeL", "test rougeLsum")},
        **{f"test {key} ci95": [pytest.approx(100.0)] * 2 for key in ("rouge1", "rouge2", "rougeL", "rougeLsum")}}]
    packages = lora["meta_info"]["package_info"]
    assert (packages["torch-version"], packages["peft-version"], packages["bitsandbytes-version"]) == (
        "2.5.0", "0.15.0", None)
    assert lora["meta_info"]["system_info"] == {"platform": "Linux-x86_64", "python": "3.11.7"}
    full = json.loads((out / "peft_results" / "full_finetune.json").read_text())
    assert full["train_info"]["accelerator_memory_max"] == 2**30 and full["run_info"]["peft_config"] is None
    assert full["train_info"]["num_trainable_params"] == 200_000 and full["train_info"]["train_time"] == 15.0


# --- the rules on hand-written rows and pairs --------------------------------------------------------------


def row(name: str, rouge: float, trainable, seconds, baseline: bool = False) -> dict:
    return {"system": name, "baseline": baseline, "rougeLsum": rouge, "rougeLsum_ci_low": rouge - 1,
            "rougeLsum_ci_high": rouge + 1, "trainable": trainable, "train_time_s": seconds}


def pair(a: str, b: str, difference: float, p_value: float) -> dict:
    return {"a": a, "b": b, "difference": {"rougeLsum": difference}, "p_value": {"rougeLsum": p_value},
            "significant": ["rougeLsum"] if p_value < 0.05 else []}


def test_pareto_front_ties_unknown_costs_and_baselines():
    rows = [row("a", 30.0, 100, 5.0), row("twin", 30.0, 100, 5.0), row("b", 29.0, 100, 1.0),
            row("c", 28.0, None, 0.5), row("lead3", 25.0, None, None, baseline=True)]
    assert pareto_front(rows, "trainable") == ["a", "twin", "lead3"]  # equal points dominate neither; c: no count
    assert pareto_front(rows, "train_time_s") == ["a", "twin", "b", "c", "lead3"]


def test_a_baseline_that_is_best_is_said_to_be_best_and_the_cheapest():
    rows = [row("lead3", 31.0, None, None, baseline=True), row("lora", 30.0, 4000, 60.0)]
    text = recommend(rows, [pair("lead3", "lora", 1.0, 0.01)], 50, "cnn_dailymail[test]")["text"]
    assert "Best quality: **lead3** (a baseline that trains nothing), ROUGE-Lsum 31.0 [30.0, 32.0], significantly " \
           "better than the runner-up **lora** (+1.00 points, p=0.0100). Every other system is significantly " \
           "worse." in text
    assert "no trained system is significantly better than **lead3** and 1 is significantly worse (lora)." in text
    assert "Cheapest not significantly worse than the best: **lead3** itself, which trains nothing." in text


def test_one_system_and_runs_without_costs():
    only = recommend([row("lora", 30.0, 4000, 60.0)], [], 10, "x")["text"]
    assert "Only **lora** was compared (30.0 [29.0, 31.0]): there is nothing to rank it against." in only
    assert "Not significantly worse" not in only
    rows = [row("csv", 30.0, None, None), row("lora", 29.0, 4000, None)]
    text = recommend(rows, [pair("csv", "lora", 1.0, 0.5)], 10, "x")["text"]
    assert "No trained system is within 1% of the trainable parameters of the largest trained system (**lora**, " \
           "4K, so at most 40)." in text
    assert "No system that is not significantly worse than the best records its training time (csv, lora: no " \
           "training time recorded, left out)." in text
