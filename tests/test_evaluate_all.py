"""evaluate_all.py and common/{evaluation,predictions,stats,report,plots}.py on hand-written run folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rouge_score import rouge_scorer

import evaluate_all
from common.core.cli import ConfigError, run
from common.comparison.systems import System, add_lead3, align_systems, compare, load_system, load_systems
from common.scoring.baselines import lead3
from common.runs.outputs import InputError
from common.scoring.rouge import ROUGE_KEYS, calculate_rouge_from_csv, rouge_per_example
from common.runs.outputs import discover_run_dirs, read_predictions_csv, run_name
from common.scoring.stats import bootstrap_ci, paired_permutation_test

FAST = ["--bootstrap_samples", "200", "--allow_few_bootstrap_samples", "--seed", "3"]
ARTICLE = "The storm hit the coast. Police closed the road. Schools shut early! Rain fell all night. Roads reopened."
OUTPUTS = ("comparison.md", "comparison.csv", "comparison.json", "examples.md",
           "rouge_vs_trainable_params.png", "rouge_vs_train_time.png")


def rows(n: int, prediction=lambda i: f"The storm hit the coast {i}.") -> dict[str, list]:
    """n examples: reference 'The storm hit the coast {i}. Police closed the road.'"""
    return {"id": [f"ex-{i}" for i in range(n)], "Article": [f"{ARTICLE} Day {i}." for i in range(n)],
            "Actual Summary": [f"The storm hit the coast {i}. Police closed the road." for i in range(n)],
            "Predicted Summary": [prediction(i) for i in range(n)]}


def run_json(method: str, trainable: int, wall: float | None, precision: str = "fp32") -> dict:
    """A run.json whose `wall` seconds of training split 2:1 into training steps and evaluation."""
    return {"method": method, "base_model": "tiny", "trainable": trainable, "total": 200_000,
            "trainable_percent": 100 * trainable / 200_000, "tied_lm_head": False, "train_wall_time_s": wall,
            "train_time_s": wall and 2 * wall / 3, "eval_time_s": wall and wall / 3,
            "train_tokens_per_s": 1000.0 if wall else None, "peak_memory": {"peak_rss_mib": 512.0},
            "saved_size_bytes": 4 * trainable, "generation_tokens_per_s": 50.0, "generation_precision": precision}


def make_run(root, name: str, columns: dict, run: dict | None):
    folder = root / name
    folder.mkdir(parents=True)
    pd.DataFrame(columns).to_csv(folder / "predictions_test.csv", index=False)
    if run is not None:
        (folder / "run.json").write_text(json.dumps(run))
    return folder


def fake_runs(root, n: int = 6):
    """lora (lead sentence + 'Police closed'), prompt (lead sentence), zero_shot (unrelated words)."""
    lora = rows(n, lambda i: f"The storm hit the coast {i}. Police closed.")
    make_run(root, "lora", lora, run_json("lora", 4000, 30.0))
    make_run(root, "prompt", rows(n), run_json("soft_prompt", 200, 12.0))
    make_run(root, "zero_shot", rows(n, lambda i: "Nothing relevant here."), run_json("zero_shot", 0, None))
    return root


def system(name: str, predictions: list[str], references: list[str], method: str = "lora") -> System:
    keys = [f"ex-{i}" for i in range(len(references))]
    return System(name=name, method=method, source=name, references=references, predictions=predictions,
                  ids=keys, keys=keys)


# --- ROUGE ----------------------------------------------------------------------------------------------


def test_rouge_of_known_strings_by_hand_and_against_rouge_score():
    pred, ref = "the cat sat on the mat", "the cat sat on a mat"
    scores = rouge_per_example([pred], [ref])[0]
    # unigrams: 5 of 6 shared; bigrams: the-cat, cat-sat, sat-on of 5; LCS 'the cat sat on mat' = 5 of 6
    assert scores == pytest.approx({"rouge1": 500 / 6, "rouge2": 60.0, "rougeL": 500 / 6, "rougeLsum": 500 / 6})
    direct = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True).score(ref, pred)
    assert scores == pytest.approx({key: 100 * direct[key].fmeasure for key in ROUGE_KEYS})


def test_rouge_lsum_matches_sentences_whatever_their_order():
    scores = rouge_per_example(["The dog ran. The cat sat."], ["The cat sat. The dog ran."])[0]
    # same bag of words; bigrams 4 of 5 (not 'sat-the'/'ran-the'); one-sequence LCS 3 of 6; per-sentence LCS 6 of 6
    assert scores == pytest.approx({"rouge1": 100.0, "rouge2": 80.0, "rougeL": 50.0, "rougeLsum": 100.0})


def test_lead3_takes_the_first_three_sentences():
    assert lead3(ARTICLE) == "The storm hit the coast. Police closed the road. Schools shut early!"
    assert lead3("Only one sentence here.") == "Only one sentence here."
    assert lead3("Line one\nLine two\nLine three\nLine four") == "Line one Line two Line three"
    assert lead3(float("nan")) == ""


# --- statistics -----------------------------------------------------------------------------------------


def test_bootstrap_ci_is_reproducible_and_contains_the_mean():
    values = np.random.default_rng(1).uniform(0, 100, size=(50, 2))
    first, second = bootstrap_ci(values, samples=1000, seed=7), bootstrap_ci(values, samples=1000, seed=7)
    np.testing.assert_array_equal(first, second)
    means = values.mean(axis=0)
    assert np.all(first[:, 0] < means) and np.all(means < first[:, 1])
    assert not np.array_equal(first, bootstrap_ci(values, samples=1000, seed=8))
    np.testing.assert_array_equal(bootstrap_ci(np.full((9, 1), 7.0), samples=1000, seed=0), [[7.0, 7.0]])


def test_paired_test_identical_and_clearly_better_systems():
    references = [f"The storm hit the coast on day {i}. Police closed the road." for i in range(60)]
    good = system("good", references, references)
    bad = system("bad", [f"Nothing relevant {i}." if i % 3 else references[i] for i in range(60)], references)
    result = compare([bad, good], good.keys, samples=1000, seed=0)
    assert [s.name for s in result.systems] == ["good", "bad"]
    pair = result.pairs[0]
    assert pair["p_value"]["rougeLsum"] == pytest.approx(1 / 1001)  # no sign flip matches 40 positive differences
    assert pair["significant"] == list(ROUGE_KEYS)
    same = compare([good, system("copy", references, references)], good.keys, samples=1000, seed=0).pairs[0]
    assert same["p_value"] == {key: 1.0 for key in ROUGE_KEYS} and same["significant"] == []
    noise = np.random.default_rng(0).normal(size=60)
    assert paired_permutation_test(noise - noise.mean(), samples=1000, seed=0) > 0.5


# --- loading and bad input ------------------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path}/nope.csv: file not found"):
        read_predictions_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="nope.csv: file not found"):
        evaluate_all.main([str(tmp_path / "nope.csv"), "--output_dir", str(tmp_path / "out"), *FAST])


def test_csv_without_needed_columns_names_them(tmp_path):
    path = tmp_path / "preds.csv"
    pd.DataFrame({"id": ["a"], "Predicted Summary": ["x"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"preds.csv: missing column\(s\) \['Actual Summary'\]"):
        read_predictions_csv(path)


def test_empty_csv_and_header_only_csv(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("Predicted Summary,Actual Summary\n")
    with pytest.raises(InputError, match="empty.csv: file is empty"):
        read_predictions_csv(tmp_path / "empty.csv")
    with pytest.raises(InputError, match=r"header.csv: no rows \(header only\)"):
        read_predictions_csv(tmp_path / "header.csv")


def test_nan_and_blank_predictions_score_zero_and_are_counted(tmp_path):
    columns = rows(4)
    columns["Predicted Summary"] = [columns["Actual Summary"][0], None, "  ", columns["Actual Summary"][3]]
    folder = make_run(tmp_path / "runs", "lora", columns, run_json("lora", 10, 1.0))
    result = evaluate_all.main([str(folder), "--output_dir", str(tmp_path / "out"), "--no_lead3", *FAST])
    scored = result.systems[0]
    assert scored.empty_predictions == 2
    assert scored.scores[:, 0].tolist() == [100.0, 0.0, 0.0, 100.0] and scored.means["rouge1"] == 50.0
    assert pd.read_csv(tmp_path / "out" / "comparison.csv")["empty_predictions"].tolist() == [2]


def test_classic_csv_without_id_or_run_json_is_accepted(tmp_path, capsys):
    path = tmp_path / "classic.csv"
    pd.DataFrame({"Predicted Summary": ["the cat sat on the mat", "a dog"],
                  "Actual Summary": ["the cat sat on a mat", "a dog"]}).to_csv(path, index=False)
    result = evaluate_all.main([str(path), "--output_dir", str(tmp_path / "out"), *FAST])
    assert [(s.name, s.system.method) for s in result.systems] == [("classic", "unknown")]
    assert result.systems[0].means["rouge2"] == pytest.approx(80.0)  # (60 + 100) / 2
    assert "lead3: no input has an Article column" in capsys.readouterr().out


def test_classic_csv_pairs_with_a_run_by_row_order(tmp_path):
    runs = fake_runs(tmp_path / "runs", n=4)
    classic = rows(4, lambda i: "The storm hit the coast.")
    del classic["id"], classic["Article"]
    pd.DataFrame(classic).to_csv(tmp_path / "classic.csv", index=False)
    systems, skipped = load_systems([runs / "lora", tmp_path / "classic.csv"])
    kept, keys, unaligned = align_systems(systems)
    assert [s.name for s in kept] == ["lora", "classic"] and keys == ["ex-0", "ex-1", "ex-2", "ex-3"]
    assert kept[1].keys == keys and skipped == [] and unaligned == []


def test_different_references_refuse_pairing(tmp_path):
    runs = fake_runs(tmp_path / "runs", n=3)
    other = rows(3)
    other["Actual Summary"][1] = "A different reference."
    make_run(tmp_path / "runs", "other", other, run_json("lora", 10, 1.0))
    kept, keys, skipped = align_systems(load_systems([runs / "lora", runs / "other"])[0])
    assert [s.name for s in kept] == ["lora"] and len(keys) == 3
    assert skipped[0].name == "other" and "reference for example 'ex-1' differs from lora's" in skipped[0].reason


def test_different_example_sets_are_compared_on_the_intersection(tmp_path):
    runs = fake_runs(tmp_path / "runs", n=5)
    shorter = pd.read_csv(runs / "prompt" / "predictions_test.csv").iloc[1:4]
    shorter.to_csv(runs / "prompt" / "predictions_test.csv", index=False)
    result = evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(tmp_path / "out"), *FAST])
    assert result.keys == ["ex-1", "ex-2", "ex-3"]
    assert {s.name: len(s.scores) for s in result.systems} == {"lead3": 3, "lora": 3, "prompt": 3, "zero_shot": 3}
    report = (tmp_path / "out" / "comparison.md").read_text()
    assert "scored on different example sets** (" in report and "on the 3 examples common to all" in report


def test_bad_run_folder_is_skipped_while_the_others_are_reported(tmp_path, capsys):
    runs = fake_runs(tmp_path / "runs", n=4)
    make_run(runs, "broken", {"id": ["ex-0"], "Predicted Summary": ["x"]}, run_json("lora", 1, 1.0))
    make_run(runs, "no_json", rows(4), None)
    result = evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(tmp_path / "out"), *FAST])
    assert sorted(s.name for s in result.systems) == ["lead3", "lora", "prompt", "zero_shot"]
    stdout, report = capsys.readouterr().out, (tmp_path / "out" / "comparison.md").read_text()
    for text in (stdout, report):
        assert "- broken: " in text and "missing column(s) ['Actual Summary']" in text
        assert f"- no_json: {runs}/no_json/run.json: file not found" in text


def test_no_valid_system_exits_with_an_error(tmp_path):
    make_run(tmp_path / "runs", "bad", rows(2), None)
    (tmp_path / "runs" / "bad" / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="no valid system to evaluate") as error:
        evaluate_all.main(["--runs_dir", str(tmp_path / "runs"), "--output_dir", str(tmp_path / "out"), *FAST])
    assert "run.json: not valid JSON" in str(error.value)
    with pytest.raises(ConfigError, match="no run folder found"):
        evaluate_all.main(["--runs_dir", str(tmp_path / "none"), *FAST])


def test_fewer_than_1000_bootstrap_samples_need_the_test_flag():
    with pytest.raises(ConfigError, match="--bootstrap_samples must be >= 1000"):
        evaluate_all.main(["--bootstrap_samples", "200"])


def test_calculate_rouge_from_csv_prints_the_classic_line(tmp_path, capsys):
    path = tmp_path / "preds.csv"
    pd.DataFrame({"Predicted Summary": ["the cat sat on the mat"], "Actual Summary": ["the cat sat on a mat"]}
                 ).to_csv(path, index=False)
    scores = calculate_rouge_from_csv(path)
    assert capsys.readouterr().out == "ROUGE-1: 83.33, ROUGE-2: 60.00, ROUGE-L: 83.33\n"
    assert scores == pytest.approx({"rouge1": 500 / 6, "rouge2": 60.0, "rougeL": 500 / 6, "rougeLsum": 500 / 6})


# --- finding runs ---------------------------------------------------------------------------------------


def test_runs_are_found_at_any_depth_and_named_by_relative_path(tmp_path):
    runs = tmp_path / "runs"
    for name in ("top", "neo/lora", "a/b/deep", ".hidden/lora", "neo/lora/checkpoint-2"):
        make_run(runs, name, rows(1), None)
    (runs / "neo" / "lora" / "adapter").mkdir()
    (runs / "no_csv").mkdir()
    (runs / "no_csv" / "run.json").write_text(json.dumps(run_json("lora", 1, 1.0)))  # run.json alone: not a run
    (runs / "a" / "b" / "up").symlink_to(runs, target_is_directory=True)  # a loop back to the top is not walked
    found = discover_run_dirs(runs, runs / "comparison")
    assert found == [runs / "a/b/deep", runs / "neo/lora", runs / "top"]
    assert [run_name(path, runs) for path in found] == ["a/b/deep", "neo/lora", "top"]


@pytest.mark.parametrize("output", ["comparison", "demo/comparison"])
def test_the_output_folder_is_not_searched_wherever_it_is(tmp_path, output):
    runs = tmp_path / "runs"
    for name in ("demo/lora", "zero_shot", output, f"{output}/older"):  # an older report holding prediction CSVs
        make_run(runs, name, rows(1), None)
    assert discover_run_dirs(runs, runs / output) == [runs / "demo/lora", runs / "zero_shot"]


def test_bare_main_compares_the_gpu_preset_tree(tmp_path, monkeypatch):
    """runs/gpt-neo-125m/<method>/ as the README's GPU presets write it, and the default output folder."""
    monkeypatch.chdir(tmp_path)  # the default --output_dir runs/comparison lands in tmp_path
    runs = tmp_path / "runs"
    predictions = {"lora": lambda i: f"The storm hit the coast {i}. Police closed the road.",
                   "finetune": lambda i: f"The storm hit the coast {i}. Police closed.",
                   "soft_prompt": lambda i: f"The storm hit the coast {i}.", "zero_shot": lambda i: "Nothing here."}
    for method, prediction in predictions.items():
        make_run(runs, f"gpt-neo-125m/{method}", rows(4, prediction), run_json(method, 10, 1.0))
    make_run(runs, "comparison", rows(4), run_json("lora", 1, 1.0))  # an older report folder: not a run
    evaluate_all.main(["--runs_dir", str(runs), *FAST])
    payload = json.loads((runs / "comparison" / "comparison.json").read_text())
    assert [row["system"] for row in payload["systems"]] == [  # ranked by ROUGE-Lsum: 100, 88.9, 81.8, 75, 0
        "gpt-neo-125m/lora", "gpt-neo-125m/finetune", "lead3", "gpt-neo-125m/soft_prompt", "gpt-neo-125m/zero_shot"]
    assert [row["method"] for row in payload["systems"]] == ["lora", "finetune", "lead3", "soft_prompt", "zero_shot"]
    assert payload["skipped"] == []


def test_a_run_named_lead3_leaves_the_name_to_the_baseline(tmp_path):
    runs = fake_runs(tmp_path / "runs", n=3)
    make_run(runs, "lead3", rows(3), run_json("lora", 10, 1.0))
    result = evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(tmp_path / "out"), *FAST])
    assert sorted((s.name, s.system.method) for s in result.systems) == [
        ("lead3", "lead3"), ("lead3 (run)", "lora"), ("lora", "lora"), ("prompt", "soft_prompt"),
        ("zero_shot", "zero_shot")]


def test_inputs_given_by_path_keep_their_folder_names(tmp_path):
    for group in ("a", "b"):
        make_run(tmp_path / group, "lora", rows(2), run_json("lora", 10, 1.0))
    systems, skipped = load_systems([tmp_path / "a" / "lora", tmp_path / "b" / "lora" / "predictions_test.csv"])
    assert [s.name for s in systems] == ["lora", "lora-2"] and skipped == []


# --- end to end -----------------------------------------------------------------------------------------


def test_main_end_to_end_writes_every_output(tmp_path, capsys):
    runs = fake_runs(tmp_path / "runs", n=6)
    make_run(runs, "comparison", rows(1), run_json("lora", 1, 1.0))  # an older report folder: not a run
    out = runs / "comparison"
    evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(out), "--num_examples_md", "2", *FAST])
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for name in OUTPUTS[-2:]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "comparison.csv")
    assert table["system"].tolist() == ["lora", "lead3", "prompt", "zero_shot"]  # ranked by ROUGE-Lsum
    assert table["rougeLsum"].round(4).tolist() == [88.8889, 81.8182, 75.0, 0.0]  # 2*8/(8+10), 2*9/(12+10), 2*6/(6+10)
    assert table["baseline"].tolist() == [False, True, False, True]
    assert table["rank"].tolist() == [1, 2, 3, 4] and table["n_examples"].tolist() == [6, 6, 6, 6]
    assert table["trainable"].fillna(-1).tolist() == [4000, -1, 200, 0] and table["saved_size_bytes"][0] == 16000
    assert table["mean_words_reference"].tolist() == [10.0] * 4
    assert table["mean_words_predicted"].tolist() == [8.0, 12.0, 6.0, 3.0]
    payload = json.loads((out / "comparison.json").read_text())
    assert len(payload["pairs"]) == 6 and payload["bootstrap_samples"] == 200 and payload["skipped"] == []
    report, stdout = (out / "comparison.md").read_text(), capsys.readouterr().out
    assert "| rank | system | method | n | ROUGE-Lsum [95% CI]" in report and report in stdout
    assert "paired permutation test" in report and "- **lora** vs **zero_shot** (n=6): ROUGE-Lsum +" in report
    assert "| 4000 (2%)" not in report and "4K (2%)" in report
    examples = (out / "examples.md").read_text()
    assert examples.count("## Example ") == 2 and examples.count("| **reference** |") == 2
    assert "| lead3 | The storm hit the coast. Police closed the road. Schools shut early! |" in examples


def test_load_system_names_and_method(tmp_path):
    runs = fake_runs(tmp_path / "runs", n=2)
    loaded = load_system(runs / "prompt")
    assert (loaded.name, loaded.method, loaded.is_baseline, loaded.ids) == ("prompt", "soft_prompt", False,
                                                                            ["ex-0", "ex-1"])
    assert load_system(runs / "zero_shot").is_baseline
    assert load_system(runs / "lora" / "predictions_test.csv").name == "lora"
    systems, _ = add_lead3([loaded], loaded.ids)
    assert (systems[-1].name, systems[-1].method, systems[-1].is_baseline) == ("lead3", "lead3", True)


def test_examples_markdown_truncates_long_articles_and_escapes_cells():
    from common.comparison.report import ARTICLE_CHARS, examples_markdown

    good = system("good", ["A | B\nC"], ["Ref."])
    good.articles = ["word " * 200]
    text = examples_markdown(compare([good], good.keys, samples=10, seed=0), count=3)
    quoted = next(line for line in text.splitlines() if line.startswith("> "))
    assert len(quoted) == len("> ") + len(("word " * 200)[:ARTICLE_CHARS].rstrip()) + len(" [...]")
    assert "| good | A \\| B<br>C |" in text and "| **reference** | Ref. |" in text


# --- run.json fields of the wrong type; ids read as text ------------------------------------------------

WRONG_FIELDS = [  # field, value, markdown column showing '-', comparison.csv column left empty, warning
    ("trainable", "many", "trainable (% of total)", "trainable", '"trainable" is "many", not a number >= 0'),
    ("train_time_s", "fast", "train time", "train_time_s", '"train_time_s" is "fast", not a number >= 0'),
    ("eval_time_s", -1, "eval time", "eval_time_s", '"eval_time_s" is -1, not a number >= 0'),
    ("saved_size_bytes", [1], "saved size", "saved_size_bytes", '"saved_size_bytes" is [1], not a number >= 0'),
    ("total", True, None, "total", '"total" is true, not a number >= 0'),
    ("peak_memory", 5, "peak memory", "peak_rss_mib", '"peak_memory" is 5, not an object'),
    ("peak_memory", {"peak_rss_mib": "lots"}, "peak memory", "peak_rss_mib",
     '"peak_memory.peak_rss_mib" is "lots", not a number >= 0'),
    ("method", 5, None, None, '"method" is 5, not text'),
    ("test_rouge", None, None, None, None),  # not read by the report: nothing to warn about
]


@pytest.mark.parametrize("field, value, cell, column, warning", WRONG_FIELDS,
                         ids=[f"{f}={json.dumps(v)}" for f, v, *_ in WRONG_FIELDS])
def test_a_wrong_typed_run_json_field_shows_a_missing_cost_and_a_warning(tmp_path, capsys, field, value, cell,
                                                                         column, warning):
    runs = fake_runs(tmp_path / "runs", n=6)
    path = runs / "lora" / "run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    out = tmp_path / "out"
    assert run(evaluate_all.main, ["--runs_dir", str(runs), "--output_dir", str(out), "--no_lead3", *FAST]) == 0
    table = pd.read_csv(out / "comparison.csv").set_index("system")
    assert table.loc["lora", "rougeLsum"].round(4) == 88.8889 and table.loc["lora", "rank"] == 1  # still scored
    assert table.loc["lora", "method"] == ("unknown" if field == "method" else "lora")
    kept = {"trainable": 4000, "total": 200_000, "train_time_s": 20.0, "eval_time_s": 10.0, "saved_size_bytes": 16000,
            "peak_rss_mib": 512.0}
    assert {name: table.loc["lora", name] for name in kept if name != column} == {
        name: number for name, number in kept.items() if name != column}
    if column is not None:
        assert pd.isna(table.loc["lora", column])
    report = (out / "comparison.md").read_text()
    if cell is not None:
        lines = report.splitlines()
        header = [c.strip() for c in next(line for line in lines if line.startswith("| rank |")).split("|")]
        lora = [c.strip() for c in next(line for line in lines if line.startswith("| 1 | lora |")).split("|")]
        assert lora[header.index(cell)] == "-"
    warnings = json.loads((out / "comparison.json").read_text())["warnings"]
    if warning is None:
        assert warnings == [] and "## Warnings" not in report
    else:
        line = f"{path}: {warning}; shown as missing"
        assert warnings == [{"name": "lora", "warning": line}]
        assert f"## Warnings\n\n- lora: {line}\n" in report and report in capsys.readouterr().out


def test_prediction_ids_are_text_so_01_and_1_differ_and_na_is_an_id(tmp_path):
    path = tmp_path / "preds.csv"
    path.write_text('id,Actual Summary,Predicted Summary\n1,Ref one.,NA\n01,Ref two.,null\nNA,Ref three.,\n'
                    'null,Ref four.,x\n', encoding="utf-8")
    loaded = load_system(path)
    assert loaded.ids == ["1", "01", "NA", "null"] and loaded.predictions == ["NA", "null", "", "x"]
    path.write_text("id,Actual Summary,Predicted Summary\nNA,a,b\n,c,d\nNA,e,f\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"preds\.csv: 1 row\(s\) have no id"):
        load_system(path)
    path.write_text("id,Actual Summary,Predicted Summary\nNA,a,b\n01,c,d\nNA,e,f\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"preds\.csv: repeated id\(s\), e\.g\. \['NA'\]"):
        load_system(path)


def test_cut_at_limit_share_comes_from_the_stopped_column_on_the_compared_rows(tmp_path):
    runs = tmp_path / "runs"
    lora = rows(4)
    lora["Stopped"] = ["eos", "limit", "eos", "eos"]
    make_run(runs, "lora", lora, run_json("lora", 4000, 30.0))
    make_run(runs, "zero_shot", {**rows(4), "Stopped": ["limit"] * 4}, run_json("zero_shot", 0, None))
    make_run(runs, "old", rows(4), run_json("lora", 10, 1.0))  # a CSV from before the column: unknown
    out = tmp_path / "out"
    evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(out), *FAST])
    table = pd.read_csv(out / "comparison.csv").set_index("system")
    assert table["cut_at_limit_share"].fillna(-1).to_dict() == {"lora": 0.25, "zero_shot": 1.0, "old": -1,
                                                                 "lead3": -1}
    report = (out / "comparison.md").read_text()
    assert "| words pred / ref | cut at limit |" in report
    assert "| 25% |" in report and "| 100% |" in report


def test_a_wrong_stopped_value_names_the_file_and_line(tmp_path):
    from common.comparison.systems import load_system

    folder = make_run(tmp_path, "lora", {**rows(3), "Stopped": ["eos", "maybe", "limit"]}, run_json("lora", 1, 1.0))
    with pytest.raises(InputError, match=r"predictions_test.csv: column 'Stopped' must hold \['eos', 'limit'\]; "
                                         r"line 3 holds 'maybe'"):
        load_system(folder)


def markdown_cells(report: str, system: str) -> dict[str, str]:
    """The comparison.md table row of `system`, by column header."""
    lines = report.splitlines()
    header = [c.strip() for c in next(line for line in lines if line.startswith("| rank |")).split("|")]
    cells = [c.strip() for c in next(line for line in lines if f"| {system} |" in line).split("|")]
    return dict(zip(header, cells))


def test_the_table_shows_training_and_evaluation_time_apart(tmp_path):
    runs, out = fake_runs(tmp_path / "runs", n=6), tmp_path / "out"
    evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(out), "--no_lead3", *FAST])
    cells = markdown_cells((out / "comparison.md").read_text(), "lora")
    assert (cells["train time"], cells["eval time"], cells["train tok/s"]) == ("20.0 s", "10.0 s", "1,000")
    assert "generation precision" not in cells


def test_a_precision_column_and_a_warning_appear_only_when_runs_generated_in_different_precisions(tmp_path):
    runs, out = fake_runs(tmp_path / "runs", n=6), tmp_path / "out"
    evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(out), *FAST])
    report = (out / "comparison.md").read_text()
    assert "Summaries generated in fp32 by every system that records it." in report
    path = runs / "lora" / "run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "generation_precision": "bf16-autocast"}))
    evaluate_all.main(["--runs_dir", str(runs), "--output_dir", str(out), *FAST])
    report = (out / "comparison.md").read_text()
    assert "**Summaries were generated in different precisions** (lora: bf16-autocast, prompt: fp32, " \
           "zero_shot: fp32)" in report
    assert [markdown_cells(report, name)["generation precision"] for name in ("lora", "prompt", "lead3")] == \
        ["bf16-autocast", "fp32", "-"]
    assert pd.read_csv(out / "comparison.csv").set_index("system").loc["lora", "generation_precision"] == \
        "bf16-autocast"
