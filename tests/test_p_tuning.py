"""P-tuning, the soft prompt method's variant (`--prompt_encoder mlp`): what trains, what is saved, resume."""

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close
from transformers import AutoModelForCausalLM

from common.core.cli import ConfigError
from common.config.arguments import DataArguments, GenerationArguments
from common.generation.generate import generate_local
from common.methods import SoftPromptArguments, count_parameters, load_trained, save_trained
from common.data.prompts import build_prompts
from common.training.trainer import PROMPT_ENCODER_FILE, load_prompt_weights
from helpers import ARTICLES, a_batch, build, stop_after, train_steps, trainer_for

P_TUNING = SoftPromptArguments(num_virtual_tokens=5, prompt_encoder="mlp")


def test_p_tuning_trains_the_encoder_and_its_input_only(tiny_model_dir):
    model = build("soft_prompt", tiny_model_dir, P_TUNING)
    d = model.get_input_embeddings().embedding_dim  # the encoder's hidden size defaults to it
    assert model.active_peft_config.peft_type.value == "P_TUNING"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("prompt_encoder.default.") for n in trainable)
    # input embedding 5 x d, then Linear(d, d), Linear(d, d), Linear(d, d) with biases
    assert count_parameters(model).trainable == 5 * d + 3 * (d * d + d)


def test_p_tuning_adapter_is_the_encoder_output_and_generates_the_same(tiny_model_dir, tiny_tokenizer, tmp_path):
    model = train_steps(build("soft_prompt", tiny_model_dir, P_TUNING), a_batch(tiny_tokenizer), lr=5e-2)
    folder = save_trained(model, tmp_path / "adapter", "soft_prompt", str(tiny_model_dir))
    saved = load_file(folder / "adapter_model.safetensors")
    with torch.no_grad():
        prompt = model.get_prompt(batch_size=1)[0]
    assert list(saved) == ["prompt_embeddings"] and saved["prompt_embeddings"].shape == prompt.shape
    assert_close(saved["prompt_embeddings"], prompt, rtol=0, atol=0)
    reloaded = load_trained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), folder).eval()
    assert not hasattr(reloaded.prompt_encoder.default, "mlp_head")  # loaded as plain vectors: no encoder
    prompts = build_prompts(tiny_tokenizer, ARTICLES, DataArguments(prompt_template="{article}\nTL;DR:"))
    gen = GenerationArguments(max_new_tokens=8, generation_batch_size=3)
    assert generate_local(reloaded, tiny_tokenizer, prompts, gen) == generate_local(model, tiny_tokenizer, prompts, gen)


def test_p_tuning_checkpoint_without_its_encoder_is_refused(tiny_model_dir, tmp_path):
    model = build("soft_prompt", tiny_model_dir, P_TUNING)
    with pytest.raises(FileNotFoundError, match=PROMPT_ENCODER_FILE):
        load_prompt_weights(model, str(tmp_path))


@pytest.mark.parametrize("args, message", [
    ({"prompt_encoder": "mlp", "prompt_init": "text"}, "--prompt_init text: P-tuning"),
    ({"prompt_encoder": "lstm", "prompt_init": "sample_vocab"}, "--prompt_init sample_vocab: P-tuning"),
    ({"encoder_hidden_size": 32}, "--encoder_hidden_size 32: applies to P-tuning only"),
])
def test_p_tuning_flags_that_do_not_apply_are_refused(args, message):
    with pytest.raises(ConfigError, match=message):
        SoftPromptArguments(**args)


def test_prompt_init_defaults_to_text_for_prompt_tuning_and_random_for_p_tuning():
    assert SoftPromptArguments().init == "text"
    assert P_TUNING.init == "random"


P_TUNING_FLAGS = ("--prompt_encoder", "mlp", "--num_virtual_tokens", "3")


def p_tuning_trainer(model_dir, files, out_dir):
    return trainer_for("soft_prompt", model_dir, files, out_dir, P_TUNING_FLAGS)


@pytest.mark.slow
def test_p_tuning_killed_then_resumed_equals_uninterrupted(tiny_model_dir, fixture_files, tmp_path):
    full = p_tuning_trainer(tiny_model_dir, fixture_files, tmp_path / "full")
    full.train()
    killed = p_tuning_trainer(tiny_model_dir, fixture_files, tmp_path / "killed")
    killed.add_callback(stop_after(2))
    killed.train()
    checkpoint = tmp_path / "killed" / "checkpoint-2"
    assert (checkpoint / PROMPT_ENCODER_FILE).is_file()
    resumed = p_tuning_trainer(tiny_model_dir, fixture_files, tmp_path / "killed")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    expected, actual = full.model.prompt_encoder.default.state_dict(), resumed.model.prompt_encoder.default.state_dict()
    assert set(expected) == set(actual) and any("mlp_head" in name for name in expected)
    for name in expected:
        assert_close(actual[name], expected[name], rtol=0, atol=1e-6)
    start = p_tuning_trainer(tiny_model_dir, fixture_files, tmp_path / "fresh").model.prompt_encoder.default.state_dict()
    assert not torch.equal(start["mlp_head.0.weight"], expected["mlp_head.0.weight"])
