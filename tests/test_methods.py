"""One body per property, parametrized over the three methods, on the tiny random GPT-Neo."""


import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close
from transformers import AutoModelForCausalLM

from common.config.arguments import DataArguments, GenerationArguments
from common.methods import FinetuneArguments
from common.generation.generate import generate_local
from common.methods import count_parameters, load_trained, save_trained
from common.data.prompts import build_prompts
from helpers import ARTICLES, a_batch, build, method_arguments, train_steps

METHODS = method_arguments()


def is_trained_name(method: str, name: str) -> bool:
    if method == "lora":
        return "lora_" in name
    if method == "soft_prompt":
        return "prompt_encoder" in name
    return name.startswith("transformer.h.1.") or name.startswith("transformer.ln_f.")


@pytest.mark.parametrize("method", METHODS)
def test_exactly_the_intended_tensors_train(method, tiny_model_dir):
    model = build(method, tiny_model_dir)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(is_trained_name(method, n) for n in trainable)
    assert all(not p.requires_grad for n, p in model.named_parameters() if not is_trained_name(method, n))


@pytest.mark.parametrize("method", METHODS)
def test_frozen_tensors_unchanged_and_trained_ones_moved(method, tiny_model_dir, tiny_tokenizer):
    model = build(method, tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, a_batch(tiny_tokenizer))
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert not torch.equal(parameter, before[name]), f"{name} did not change"
        else:
            assert torch.equal(parameter, before[name]), f"frozen {name} changed"


@pytest.mark.parametrize("method", METHODS)
def test_save_reload_gives_identical_logits(method, tiny_model_dir, tiny_tokenizer, tmp_path):
    model = train_steps(build(method, tiny_model_dir), a_batch(tiny_tokenizer))
    folder = save_trained(model, tmp_path / "adapter", method, str(tiny_model_dir))
    reloaded = load_trained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), folder).eval()
    batch = a_batch(tiny_tokenizer)
    with torch.no_grad():
        expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        actual = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert_close(actual, expected, rtol=0, atol=0)
    saved = {}
    for file in folder.glob("*.safetensors"):
        saved.update(load_file(file))
    assert sum(t.numel() for t in saved.values()) == count_parameters(model).trainable
    assert "transformer.wte.weight" not in saved and not any("wte" in k for k in saved)


@pytest.mark.parametrize("method", METHODS)
def test_batched_generation_equals_one_at_a_time(method, tiny_model_dir, tiny_tokenizer):
    model = train_steps(build(method, tiny_model_dir), a_batch(tiny_tokenizer), lr=5e-2)
    prompts = build_prompts(tiny_tokenizer, ARTICLES, DataArguments(prompt_template="{article}\nTL;DR:"))
    assert len({len(p) for p in prompts}) == 3
    gen = GenerationArguments(max_new_tokens=12, generation_batch_size=3)
    batched = generate_local(model, tiny_tokenizer, prompts, gen)
    single = [generate_local(model, tiny_tokenizer, [p], gen)[0] for p in prompts]
    assert batched == single
    assert any(summary.text for summary in batched)


def test_finetune_with_tied_head_trains_embeddings_and_counts_once(tiny_model_dir):
    model = build("finetune", tiny_model_dir, FinetuneArguments(num_trainable_layers=0, train_lm_head=True))
    counts = count_parameters(model)
    embedding = model.get_input_embeddings().weight
    assert counts.tied_lm_head is True
    assert counts.trainable == embedding.numel()  # the seed's setting: the (tied) LM head alone
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["transformer.wte.weight"]
    assert counts.total == sum(p.numel() for p in model.parameters())  # parameters() yields the tied tensor once


@pytest.mark.parametrize("layers, final_norm, expected", [
    (0, True, ["transformer.ln_f.bias", "transformer.ln_f.weight", "transformer.wte.weight"]),
    (1, None, ["transformer.h.1", "transformer.ln_f.bias", "transformer.ln_f.weight"]),
    (1, False, ["transformer.h.1"]),
])
def test_finetune_trains_the_final_norm_with_blocks_or_when_asked(tiny_model_dir, layers, final_norm, expected):
    args = FinetuneArguments(num_trainable_layers=layers, train_final_norm=final_norm, train_lm_head=layers == 0)
    model = build("finetune", tiny_model_dir, args)
    trained = {name if not name.startswith("transformer.h.") else ".".join(name.split(".")[:3])
               for name, p in model.named_parameters() if p.requires_grad}
    assert sorted(trained) == expected


def test_finetune_that_trains_nothing_is_refused():
    with pytest.raises(ValueError, match="trains nothing"):
        FinetuneArguments(num_trainable_layers=0)
