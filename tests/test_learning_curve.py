"""The learning curve: the callback's step-0 point and reference lines, run.json's `learning_curve`, and
evaluate_all's learning_curves.png, on the tiny random model and hand-written run folders."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

import evaluate_all
import train_lora
from common.training.callbacks import BEGIN_KEY, CostClock, GenerateAndScoreCallback, examples_seen, learning_curve
from common.config.arguments import DataArguments, GenerationArguments
from common.scoring.baselines import lead3
from common.generation.generate import generate_summaries
from common.scoring.rouge import rouge_scores
from common.comparison.plots import learning_curve_figure
from common.data.prompts import build_prompts
from helpers import build, quick_flags

ARTICLES = ["The council approved the budget on Tuesday. The vote was close. Schools get more money. Roads wait.",
            "Police said the driver was taken to hospital. The road was closed for hours. No one else was hurt. "
            "An inquiry starts Monday.",
            "Scientists found that the river is cleaner. Fish returned last year. Officials were pleased. More tests "
            "follow."]
REFERENCES = ["The council approved the budget. Schools get more money.",
              "The driver was taken to hospital. An inquiry starts Monday.",
              "The river is cleaner and fish returned."]
GEN = GenerationArguments(max_new_tokens=8, generation_batch_size=3)
ARGS = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=1)


def prompts_for(tokenizer):
    return build_prompts(tokenizer, ARTICLES, DataArguments(prompt_template="{article}\nTL;DR:"))


def start_curve(model, tokenizer, articles=ARTICLES):
    """Run the callback's on_train_begin on `model`; returns (the begin entry, what each generate call made)."""
    callback = GenerateAndScoreCallback(tokenizer, prompts_for(tokenizer), REFERENCES, GEN, CostClock(),
                                        articles=articles)
    generated = []
    original = callback.generate
    callback.generate = lambda m: generated.append(original(m)) or generated[-1]
    state = TrainerState()
    callback.on_train_begin(ARGS, state, TrainerControl(), model=model)
    return state.log_history[-1][BEGIN_KEY], generated


def base_generation(tiny_model_dir, tokenizer):
    return generate_summaries(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, prompts_for(tokenizer),
                              GEN)


def test_examples_seen_is_steps_times_batch_times_accumulation_times_processes():
    args = SimpleNamespace(per_device_train_batch_size=3, gradient_accumulation_steps=4, world_size=2)
    assert [examples_seen(args, step) for step in (0, 1, 5)] == [0, 24, 120]


def test_lora_step_zero_point_equals_zero_shot(tiny_model_dir, tiny_tokenizer):
    begin, generated = start_curve(build("lora", tiny_model_dir), tiny_tokenizer)
    base = base_generation(tiny_model_dir, tiny_tokenizer)
    assert generated == [base, base]  # the starting model (B = 0), then the adapter disabled: both the base model
    scores = {key: begin["start"][key] for key in begin["zero_shot"]}
    assert scores == begin["zero_shot"]
    assert begin["start"]["step"] == 0 and begin["start"]["examples_seen"] == 0 and begin["dev_examples"] == 3


def test_lora_zero_shot_generates_with_the_adapter_disabled(tiny_model_dir, tiny_tokenizer):
    model = build("lora", tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=5.0)  # an adapter that changes the outputs
    _, (start, zero_shot) = start_curve(model, tiny_tokenizer)
    assert zero_shot == base_generation(tiny_model_dir, tiny_tokenizer)
    assert start != zero_shot
    assert generate_summaries(model, tiny_tokenizer, prompts_for(tiny_tokenizer), GEN) == start  # enabled again


def test_finetune_step_zero_point_is_zero_shot_generated_once(tiny_model_dir, tiny_tokenizer):
    begin, generated = start_curve(build("finetune", tiny_model_dir), tiny_tokenizer)
    assert generated == [base_generation(tiny_model_dir, tiny_tokenizer)]
    assert {key: begin["start"][key] for key in begin["zero_shot"]} == begin["zero_shot"]


def test_soft_prompt_zero_shot_is_the_base_model_without_virtual_tokens(tiny_model_dir, tiny_tokenizer):
    model = build("soft_prompt", tiny_model_dir)
    _, (start, zero_shot) = start_curve(model, tiny_tokenizer)
    assert zero_shot == base_generation(tiny_model_dir, tiny_tokenizer)
    assert start == generate_summaries(model, tiny_tokenizer, prompts_for(tiny_tokenizer), GEN)
    assert start != zero_shot  # the virtual tokens change these summaries: the two are told apart


def test_lead3_line_equals_the_lead3_scorer_on_those_articles(tiny_model_dir, tiny_tokenizer):
    begin, _ = start_curve(build("finetune", tiny_model_dir), tiny_tokenizer)
    expected = rouge_scores([lead3(article) for article in ARTICLES], REFERENCES)  # (15 + 19 + 14) / 3 words
    assert 0 < expected["rougeLsum"] < 100
    assert begin["lead3"] == pytest.approx({"rouge1": expected["rouge1"], "rouge2": expected["rouge2"],
                                            "rougeLsum": expected["rougeLsum"], "mean_words": 16.0}, abs=1e-4)
    without_articles, _ = start_curve(build("finetune", tiny_model_dir), tiny_tokenizer, articles=None)
    assert without_articles["lead3"] is None


def test_cost_clock_counts_training_steps_and_evaluation_apart():
    clock, state, control = CostClock(), TrainerState(), TrainerControl()
    for _ in range(2):
        clock.on_step_begin(ARGS, state, control)
        time.sleep(0.05)
        clock.on_step_end(ARGS, state, control)
        with clock.evaluating():  # an evaluation between steps, with the curve's generation nested in it
            with clock.evaluating():
                time.sleep(0.2)
        time.sleep(0.1)  # a checkpoint: neither
    assert 0.1 <= clock.train_seconds < 0.3  # with the evaluations it would be >= 0.5
    assert 0.4 <= clock.eval_seconds < 0.6  # counted once, not once per nested block (>= 0.8)


def test_a_resumed_run_continues_its_curve_and_clock_without_scoring_the_start_again(tiny_tokenizer):
    clock = CostClock()
    clock.restore({"train_wall_time_s": 9.0, "train_time_s": 5.25, "eval_time_s": 3.5})
    callback = GenerateAndScoreCallback(tiny_tokenizer, prompts_for(tiny_tokenizer), REFERENCES, GEN, clock)
    callback.generate = lambda model: pytest.fail("a resumed run generated its start again")
    state = TrainerState(global_step=4)
    state.log_history = [{BEGIN_KEY: {"dev_examples": 3}, "step": 0}, {"eval_rougeLsum": 1.0, "train_seconds": 2.5},
                         {"eval_rougeLsum": 2.0, "train_seconds": 5.25}]
    callback.on_train_begin(ARGS, state, TrainerControl(), model=object())
    assert (clock.train_seconds, clock.eval_seconds, len(state.log_history)) == (5.25, 3.5, 3)
    older = CostClock()
    older.restore({"train_wall_time_s": 9.0})  # a checkpoint written before the split: its wall time, all training
    assert (older.train_seconds, older.eval_seconds) == (9.0, 0.0)


def test_run_json_training_time_leaves_out_evaluation(tiny_model_dir, fixture_files, tmp_path, monkeypatch):
    """Each curve generation made 0.4 s slower: all of it lands in eval_time_s, none in train_time_s or
    train_tokens_per_s (the start's two generations and one per evaluation: 4 x 0.4 s)."""
    import common.training.callbacks

    generate = common.training.callbacks.generate_summaries
    monkeypatch.setattr(common.training.callbacks, "generate_summaries",
                        lambda *a, **k: time.sleep(0.4) or generate(*a, **k))
    run = train_lora.main(quick_flags(tiny_model_dir, fixture_files, tmp_path / "lora"))
    assert run["eval_time_s"] >= 4 * 0.4
    assert run["train_time_s"] + run["eval_time_s"] <= run["train_wall_time_s"]
    assert run["train_tokens_per_s"] == pytest.approx(run["train_tokens"] / run["train_time_s"], rel=1e-3)
    assert run["learning_curve"]["points"][-1]["train_seconds"] == pytest.approx(run["train_time_s"], abs=1e-3)


@pytest.mark.parametrize("eval_beams, curve_beams", [("0", 3), ("1", 1)])
def test_curve_decodes_with_eval_num_beams_else_with_num_beams(eval_beams, curve_beams, tiny_model_dir,
                                                                 fixture_files, tmp_path):
    from helpers import trainer_for

    trainer = trainer_for("lora", tiny_model_dir, fixture_files, tmp_path, extra=(
        "--eval_strategy", "steps", "--eval_steps", "2", "--num_eval_generate", "2", "--num_beams", "3",
        "--eval_num_beams", eval_beams))
    [callback] = [c for c in trainer.callback_handler.callbacks if isinstance(c, GenerateAndScoreCallback)]
    assert callback.gen_args.num_beams == curve_beams
    assert callback.gen_args == GenerationArguments(num_eval_generate=2, num_beams=curve_beams,
                                                    eval_num_beams=int(eval_beams))


def test_learning_curve_is_none_without_the_callbacks_start_entry():
    assert learning_curve([{"loss": 1.0, "step": 1}, {"eval_loss": 2.0, "step": 1}]) is None


def test_run_json_holds_the_curve_after_a_tiny_training_run(tiny_model_dir, fixture_files, tmp_path):
    flags = quick_flags(tiny_model_dir, fixture_files, tmp_path / "lora")
    summary = train_lora.main([*flags, "--gradient_accumulation_steps", "2"])  # 2 per batch x 2 accumulated
    curve = json.loads((tmp_path / "lora" / "run.json").read_text())["learning_curve"]
    assert curve == summary["learning_curve"] and curve["dev_examples"] == 2
    points = curve["points"]
    assert [p["step"] for p in points] == [0, 1, 2] and [p["examples_seen"] for p in points] == [0, 4, 8]
    assert set(points[0]) == {"step", "examples_seen", "train_seconds", "rouge1", "rouge2", "rougeLsum", "mean_words"}
    assert 0 == points[0]["train_seconds"] < points[1]["train_seconds"] < points[2]["train_seconds"]
    assert points[2]["train_seconds"] <= summary["train_time_s"] <= summary["train_wall_time_s"]
    logged = [e for e in summary["log_history"] if "eval_rougeLsum" in e]
    assert [p["rougeLsum"] for p in points[1:]] == [e["eval_rougeLsum"] for e in logged]
    assert {key: points[0][key] for key in curve["zero_shot"]} == curve["zero_shot"]  # LoRA starts at zero-shot
    evaluated = [e["eval_loss"] for e in summary["log_history"] if "eval_loss" in e and "eval_runtime" in e]
    assert [p["dev_loss"] for p in points[1:]] == pytest.approx(evaluated, abs=1e-4) and len(evaluated) == 2
    assert all(p["dev_loss"] > 0 for p in points[1:])
    assert set(curve["lead3"]) == {"rouge1", "rouge2", "rougeLsum", "mean_words"}


# --- evaluate_all: learning_curves.png ---------------------------------------------------------------------


def a_curve(dev_examples: int, values: list[float]) -> dict:
    return {"dev_examples": dev_examples, "zero_shot": {"rouge1": 9.0, "rouge2": 2.0, "rougeLsum": 8.0},
            "lead3": {"rouge1": 30.0, "rouge2": 12.0, "rougeLsum": 25.0},
            "points": [{"step": 10 * i, "examples_seen": 80 * i, "train_seconds": 30.0 * i, "rouge1": v + 2,
                        "rouge2": v / 2, "rougeLsum": v, "mean_words": 40.0} for i, v in enumerate(values)]}


def write_run(root, name: str, method: str, curve: dict | None):
    folder = root / name
    folder.mkdir(parents=True)
    pd.DataFrame({"id": ["a", "b", "c"], "Article": ["The storm hit. Roads shut. Rain fell. Sun came."] * 3,
                  "Actual Summary": ["The storm hit the coast.", "Roads shut early.", "Rain fell all night."],
                  "Predicted Summary": ["The storm hit.", "Roads shut.", "Rain fell."]}).to_csv(
        folder / "predictions_test.csv", index=False)
    run = {"method": method, "trainable": 100, "total": 1000, "train_wall_time_s": 60.0}
    (folder / "run.json").write_text(json.dumps({**run, **({"learning_curve": curve} if curve else {})}))


FAST = ["--bootstrap_samples", "200", "--allow_few_bootstrap_samples", "--no_lead3"]


def test_evaluate_all_writes_learning_curves_png_from_run_json(tmp_path, capsys):
    write_run(tmp_path / "runs", "lora", "lora", a_curve(64, [8.0, 14.0, 17.5]))
    write_run(tmp_path / "runs", "prompt", "soft_prompt", a_curve(64, [8.0, 9.0]))
    out = tmp_path / "out"
    evaluate_all.main(["--runs_dir", str(tmp_path / "runs"), "--output_dir", str(out), *FAST])
    png = (out / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "`learning_curves.png`" in (out / "comparison.md").read_text()
    assert "learning_curves.png to" in capsys.readouterr().out.splitlines()[-1]  # the "Wrote ..." line


def test_evaluate_all_writes_no_learning_curves_png_without_a_curve(tmp_path, capsys):
    write_run(tmp_path / "runs", "lora", "lora", None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "learning_curves.png").write_bytes(b"an earlier comparison's plot")
    evaluate_all.main(["--runs_dir", str(tmp_path / "runs"), "--output_dir", str(out), *FAST])
    assert not (out / "learning_curves.png").exists()
    assert "learning_curves" not in (out / "comparison.md").read_text()
    assert "learning_curves" not in capsys.readouterr().out


def test_learning_curve_figure_draws_one_line_per_run_and_the_shared_reference_lines():
    figure = learning_curve_figure({"lora": a_curve(64, [8.0, 14.0, 17.5]), "prompt (soft_prompt)": a_curve(64, [8.0])})
    left, right = figure.axes
    assert [line.get_label() for line in left.get_lines()] == ["lora", "prompt (soft_prompt)", "zero-shot 8.0",
                                                               "lead-3 25.0"]
    assert list(left.get_lines()[0].get_xdata()) == [0, 80, 160]
    assert list(right.get_lines()[0].get_xdata()) == [0.0, 0.5, 1.0]  # minutes
    assert list(right.get_lines()[0].get_ydata()) == [8.0, 14.0, 17.5]


def test_learning_curve_figure_names_disagreeing_dev_sets_instead_of_drawing_reference_lines():
    figure = learning_curve_figure({"lora": a_curve(64, [8.0, 14.0]), "prompt": a_curve(32, [7.0, 9.0])})
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["lora", "prompt"]
    assert "different numbers of validation examples (32, 64)" in figure.get_suptitle()


def test_report_to_tensorboard_logs_the_curve_rouge_and_costs(tiny_model_dir, fixture_files, tmp_path, monkeypatch):
    """--report_to tensorboard, read back from the event files: dev ROUGE at each evaluation (the Trainer logs an
    evaluation before its callbacks add ROUGE, so without our report it never reaches a tracker), the step-0
    start, zero-shot and lead-3 lines, and the training and evaluation seconds as run.json has them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    run = train_lora.main([*quick_flags(tiny_model_dir, fixture_files, tmp_path / "lora"), "--report_to", "tensorboard"])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()

    def scalars(tag):
        return [(event.step, round(event.value, 3)) for event in events.Scalars(tag)]

    points = run["learning_curve"]["points"]
    assert scalars("eval/rougeLsum") == [(p["step"], round(p["rougeLsum"], 3)) for p in points[1:]]
    assert scalars("eval/start_rougeLsum") == [(0, round(points[0]["rougeLsum"], 3))]
    assert scalars("eval/lead3_rougeLsum") == [(0, round(run["learning_curve"]["lead3"]["rougeLsum"], 3))]
    assert scalars("train/train_time_s")[-1] == (2, round(run["train_time_s"], 3))
    assert scalars("eval/time_s")[-1] == (2, round(run["eval_time_s"], 3))  # tensorboard files eval_* under eval/
