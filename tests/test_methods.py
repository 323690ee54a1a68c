"""One body per property, parametrized over every method and variant, on the tiny random GPT-Neo."""


import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close
from transformers import AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM

from common.config.arguments import DataArguments, GenerationArguments, ModelArguments
from common.methods import FinetuneArguments
from common.generation.generate import generate_local
from common.methods import (build_method, count_parameters, load_trained, method_for, recorded_names, save_trained,
                            trains_prompt_encoder, variant_settings)
from common.data.prompts import build_prompts
from helpers import ARTICLES, ROOT, a_batch, build, method_arguments, train_steps

METHODS = method_arguments()


TRAINED = {"lora": "lora_", "dora": "lora_", "rslora": "lora_", "ia3": "ia3_l", "soft_prompt": "prompt_encoder",
           "prefix_tuning": "prompt_encoder", "prefix_tuning_mlp": "prompt_encoder"}


def is_trained_name(method: str, name: str) -> bool:
    if method in TRAINED:
        return TRAINED[method] in name  # dora: lora_A, lora_B and lora_magnitude_vector
    if method == "full_finetune":
        return True
    return name.startswith("transformer.h.1.") or name.startswith("transformer.ln_f.")


def test_every_method_and_variant_is_checked():
    assert sorted(METHODS) == sorted([*TRAINED, "finetune", "full_finetune"]), "say what a new method trains"


@pytest.mark.parametrize("method", METHODS)
def test_exactly_the_intended_tensors_train(method, tiny_model_dir):
    model = build(method, tiny_model_dir)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(is_trained_name(method, n) for n in trainable)
    assert any("lora_magnitude_vector" in n for n in trainable) == (method == "dora")
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
    # An MLP-made prefix is saved as its output (virtual tokens x layers x 2 x hidden), not as the MLP.
    expected = (model.get_prompt_embedding_to_save("default").numel() if trains_prompt_encoder(model)
                else count_parameters(model).trainable)
    assert sum(t.numel() for t in saved.values()) == expected
    if method == "full_finetune":  # every weight, the tied embedding / LM head once
        assert sorted(saved) == sorted(name for name, _ in model.named_parameters())
    else:  # what was trained, not the model
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


# GPT-Neo-125M: 12 layers, hidden 768, vocabulary 50,257, 2,048 positions, MLP 3,072; q/k/v without bias.
H, LAYERS, VOCAB, POSITIONS, MLP = 768, 12, 50257, 2048, 3072
GPT_NEO_125M = GPTNeoConfig(vocab_size=VOCAB, max_position_embeddings=POSITIONS, hidden_size=H, num_layers=LAYERS,
                            num_heads=12, intermediate_size=MLP, attention_types=[[["global", "local"], 6]])
BLOCK = 2 * 2 * H + 3 * H * H + (H * H + H) + (H * MLP + MLP) + (MLP * H + H)  # 2 norms, q/k/v, out, c_fc, c_proj
TOTAL = VOCAB * H + POSITIONS * H + LAYERS * BLOCK + 2 * H  # embeddings (= the tied head), blocks, final norm
LORA = LAYERS * 16 * (4 * (H + H) + (H + MLP) + (MLP + H))  # r 16: A (r x in) and B (out x r) on all 6 linears
TRAINABLE_125M = {"lora": LORA, "rslora": LORA, "dora": LORA + LAYERS * (4 * H + MLP + H),  # + a magnitude per output
                  "soft_prompt": 20 * H, "finetune": BLOCK + 2 * H, "full_finetune": TOTAL,
                  "ia3": LAYERS * (H + H + MLP),  # PEFT's GPT-Neo targets: q_proj, v_proj outputs; MLP c_proj input
                  "prefix_tuning": 20 * LAYERS * 2 * H,  # 20 virtual tokens, a key and a value in every layer
                  # the MLP variant: a 20 x H embedding, then Linear(H, H) and Linear(H, layers x 2 x H), with biases
                  "prefix_tuning_mlp": 20 * H + (H * H + H) + (H * LAYERS * 2 * H + LAYERS * 2 * H)}


@pytest.mark.parametrize("method", recorded_names())
def test_gpt_neo_125m_trainable_parameters_at_the_defaults_are_the_arithmetic_and_the_readme(method):
    """Each method at its defaults (the soft prompt's random start: no tokenizer needed) on GPT-Neo-125M's shapes,
    built on the meta device: no weights downloaded or allocated."""
    assert TOTAL == 125_198_592
    start = {"prompt_init": "random"} if method == "soft_prompt" else {}
    args = method_for(method).arguments(**variant_settings(method), **start)
    with torch.device("meta"):
        model = build_method(method_for(method).name, GPTNeoForCausalLM(GPT_NEO_125M), args, ModelArguments())
    counts = count_parameters(model)
    added = TRAINABLE_125M[method] if method_for(method).peft_adapter else 0  # adapter tensors join the model
    assert (counts.trainable, counts.total) == (TRAINABLE_125M[method], TOTAL + added)
    rows = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("|") and f"(`{method}`)" in line]
    assert len(rows) == 1 and f"{TRAINABLE_125M[method]:,}" in rows[0], rows


def test_rslora_scales_the_update_by_alpha_over_sqrt_r(tiny_model_dir):
    """r 4, alpha 8: LoRA (and DoRA) scale by 8 / 4, rsLoRA by 8 / sqrt(4)."""
    scalings = {method: {module.scaling["default"] for module in build(method, tiny_model_dir).modules()
                         if hasattr(module, "lora_A") and hasattr(module, "scaling")}
                for method in ("lora", "dora", "rslora")}
    assert scalings == {"lora": {2.0}, "dora": {2.0}, "rslora": {4.0}}
