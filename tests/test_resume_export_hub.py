"""Resume equals an uninterrupted run; merged LoRA export; the Hub folder and card; a pushed run pulled back."""


import pandas as pd
import pytest
import torch
from torch.testing import assert_close
from transformers import AutoModelForCausalLM

from common.hub import publish as hub
from common.config.parsing import parse_run_config
from common.methods import method_for, method_title, recorded_names, trained_state_dict
from common.pipeline.steps import run_method
import common.predict
import common.push
from helpers import cli, data_flags, stop_after, talk_to_test_hub, trainer_for, variant_flags


@pytest.mark.slow
@pytest.mark.parametrize("method", recorded_names())
def test_killed_then_resumed_equals_uninterrupted(method, tiny_model_dir, fixture_files, tmp_path):
    full = trainer_for(method, tiny_model_dir, fixture_files, tmp_path / "full")
    full.train()
    killed = trainer_for(method, tiny_model_dir, fixture_files, tmp_path / "killed")
    killed.add_callback(stop_after(2))
    killed.train()
    assert killed.state.global_step == 2
    resumed = trainer_for(method, tiny_model_dir, fixture_files, tmp_path / "killed",
                          ["--resume_from_checkpoint", "last"])
    resumed.train(resume_from_checkpoint=str(tmp_path / "killed" / "checkpoint-2"))
    expected, actual = trained_state_dict(full.model), trained_state_dict(resumed.model)
    assert expected.keys() == actual.keys() and expected
    for name in expected:
        assert_close(actual[name], expected[name], rtol=0, atol=1e-6)
    before = trained_state_dict(trainer_for(method, tiny_model_dir, fixture_files, tmp_path / "fresh").model)
    assert any(not torch.equal(before[n], expected[n]) for n in expected)


def run_quick(method, model_dir, files, out_dir, extra=()):
    """Two steps of `method` (a recorded name: 'dora' is LoRA with --use_dora true), 4 test summaries."""
    argv = ["--model_name_or_path", str(model_dir), *data_flags(files), "--output_dir", str(out_dir),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--max_new_tokens", "4",
            "--eval_strategy", "no", "--save_strategy", "no", "--learning_rate", "1e-2", *variant_flags(method),
            *extra]
    return run_method(parse_run_config(method_for(method).name, argv))


@pytest.mark.slow
def test_merged_lora_export_equals_base_plus_adapter(tiny_model_dir, fixture_files, tmp_path, tiny_tokenizer):
    merged_dir = tmp_path / "merged"
    run_quick("lora", tiny_model_dir, fixture_files, tmp_path / "run", ["--merge_and_export", str(merged_dir)])
    from common.methods import load_trained

    adapted = load_trained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "run" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    ids = torch.tensor([tiny_tokenizer("The council approved the budget.")["input_ids"]])
    with torch.no_grad():
        assert_close(merged(ids).logits, adapted(ids).logits, rtol=1e-5, atol=1e-5)
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(ids).logits
    assert not torch.allclose(base, adapted(ids).logits)


@pytest.mark.slow
@pytest.mark.parametrize("method", [name for name in recorded_names() if name != "soft_prompt"])
def test_push_to_hub_uploads_the_prepared_folder(method, tiny_model_dir, fixture_files, tmp_path, monkeypatch,
                                                 hub_server):
    """A real upload through huggingface_hub to the test Hub (HF_ENDPOINT, see conftest), in this process, then
    the repo pulled back by name (`common.predict --trained_path OWNER/NAME`) gives the run's predictions.
    Soft prompts are pushed and pulled back in tests/test_online.py."""
    talk_to_test_hub(monkeypatch)
    out_dir, repo_id = tmp_path / "run", f"someone/tiny-{method}"
    payload = run_quick(method, tiny_model_dir, fixture_files, out_dir, ["--push_to_hub", "--hub_model_id", repo_id])
    folder, repo = out_dir / hub.HUB_FOLDER, hub_server.repo_path(repo_id)
    names = sorted(p.name for p in repo.iterdir())
    assert names == sorted(p.name for p in folder.iterdir())
    assert all((repo / name).read_bytes() == (folder / name).read_bytes() for name in names)
    weights = "adapter_model.safetensors" if method_for(method).peft_adapter else "trained_params.safetensors"
    assert weights in names and "README.md" in names and "run.json" in names
    assert not any(name in names for name in ("model.safetensors", "pytorch_model.bin"))
    card = (repo / "README.md").read_text()
    assert str(tmp_path) not in card and str(tiny_model_dir) not in (repo / "run.json").read_text()
    for text in (f"`{tiny_model_dir.name}`", f"{payload['trainable']:,} of {payload['total']:,}",
                 f"ROUGE-Lsum {payload['test_rouge']['rougeLsum']:.2f}", "train 6, validation 3, test 4",
                 f"- {method}\n", f"{method_title(method)[0].upper()}{method_title(method)[1:]} of "):
        assert text in card, text
    # The card's load snippet works, pointed at the local folder instead of the Hub id.
    snippet = hub.load_snippet(method, str(tiny_model_dir), str(repo))
    namespace = {}
    exec(compile(snippet, "snippet", "exec"), namespace)  # noqa: S102 - our own generated code
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert namespace["model"](ids).logits.shape == (1, 3, 512)
    pulled_back = common.predict.main(["--model_name_or_path", str(tiny_model_dir), "--test_file",
                                       fixture_files["test"], "--max_new_tokens", "4", "--trained_path", repo_id,
                                       "--output_dir", str(tmp_path / "pulled")])
    assert pulled_back["method"] == method and pulled_back["trained_path"] == repo_id
    predictions = [pd.read_csv(d / "predictions_test.csv", keep_default_na=False)["Predicted Summary"].tolist()
                   for d in (out_dir, tmp_path / "pulled")]
    assert predictions[0] == predictions[1]


@pytest.mark.slow
def test_push_without_network_keeps_results_and_says_how(tiny_model_dir, fixture_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match=f"python -m common.push {tmp_path} --hub_model_id someone/x"):
        run_quick("lora", tiny_model_dir, fixture_files, tmp_path, ["--push_to_hub", "--hub_model_id", "someone/x"])
    assert (tmp_path / "run.json").is_file() and (tmp_path / hub.HUB_FOLDER / "README.md").is_file()


@pytest.mark.slow
def test_a_finished_run_is_pushed_again_without_training_and_its_card_carries_the_results(
        tiny_model_dir, fixture_files, tmp_path, monkeypatch, hub_server, capsys):
    """`python -m common.push RUN_DIR` after a run that never pushed: the repo gets the run's own adapter and
    run.json, the run's result files stay byte for byte, and the card read back through huggingface_hub
    holds test ROUGE-1/2/L/Lsum with the test split and the decoding (model-index)."""
    from huggingface_hub import ModelCard

    out_dir = tmp_path / "run"
    payload = run_quick("lora", tiny_model_dir, fixture_files, out_dir, ["--num_beams", "2"])
    results = {p: p.read_bytes() for p in [out_dir / "run.json", out_dir / "predictions_test.csv",
                                           *(out_dir / "adapter").iterdir()]}
    talk_to_test_hub(monkeypatch)
    code, err = cli(common.push.main, [str(out_dir), "--hub_model_id", "someone/pushed-later"], capsys)
    assert code == 0, err
    repo = hub_server.repo_path("someone/pushed-later")
    assert (repo / "adapter_model.safetensors").read_bytes() == results[out_dir / "adapter" / "adapter_model.safetensors"]
    assert {p: p.read_bytes() for p in results} == results
    card = ModelCard.load("someone/pushed-later")
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [
        (label, round(payload["test_rouge"][key], 2)) for key, label in
        (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum"))]
    result = card.data.eval_results[0]
    assert (result.task_type, result.dataset_name, result.dataset_split) == ("summarization", "test.jsonl", "test")
    assert result.metric_args == {"num_beams": 2, "max_new_tokens": 4, "no_repeat_ngram_size": 0,
                                  "precision": "fp32", "test_examples": 4}


def test_push_refuses_a_folder_without_a_finished_run(tmp_path, capsys):
    code, err = cli(common.push.main, [str(tmp_path), "--hub_model_id", "someone/x"], capsys)
    assert code == 2 and f"{tmp_path}: no run.json, so not a finished training run" in err
    code, err = cli(common.push.main, [str(tmp_path), "--hub_model_id", "not-an-owner-slash-name"], capsys)
    assert code == 2 and "--hub_model_id not-an-owner-slash-name: expected OWNER/NAME" in err
