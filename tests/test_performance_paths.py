"""The fast paths give the plain results: checkpointing, token-level generation and the benchmark's FLOP count."""

import copy

import pytest
import torch
from torch.testing import assert_close

from transformers import AutoModelForCausalLM

from common.config.arguments import DataArguments, GenerationArguments, ModelArguments
from common.generation.generate import generate_local, generate_local_tokens, prompt_after_padding
from common.methods import build_method, num_virtual_tokens, transformer_blocks
from common.data.prompts import build_prompts, left_pad
from common.training.trainer import enable_activation_checkpointing, label_position_loss
from helpers import ARTICLES, a_batch, build, check_outputs, method_arguments, quick_flags, train_steps

METHODS = method_arguments()


def loss_and_grads(model, batch):
    model.train()
    loss = label_position_loss(model, batch, num_virtual_tokens(model))
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("method", [m for m in METHODS if not m.startswith("prefix_tuning")])  # refused for it
def test_checkpointing_keeps_loss_and_gradients(method, reentrant, tiny_model_dir, tiny_tokenizer):
    plain = build(method, tiny_model_dir)
    checkpointed = copy.deepcopy(plain)
    enable_activation_checkpointing(checkpointed, {"use_reentrant": reentrant})
    batch = a_batch(tiny_tokenizer)
    expected_loss, expected = loss_and_grads(plain, batch)
    loss, grads = loss_and_grads(checkpointed, batch)
    assert_close(loss, expected_loss, rtol=1e-6, atol=1e-6)
    assert grads.keys() == expected.keys() and all(g is not None for g in grads.values())
    for name, grad in grads.items():
        assert_close(grad, expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_checkpointed_finetune_runs_frozen_blocks_without_autograd(tiny_model_dir, tiny_tokenizer):
    model = build("finetune", tiny_model_dir)
    enable_activation_checkpointing(model)
    needs_grad = []
    hooks = [block.register_forward_hook(lambda m, i, out: needs_grad.append(out[0].requires_grad))
             for block in transformer_blocks(model)]
    loss_and_grads(model, a_batch(tiny_tokenizer))
    for hook in hooks:
        hook.remove()
    assert needs_grad == [False, True]  # block 0 is frozen: no graph, no backward; block 1 trains


@pytest.mark.slow
def test_checkpointed_finetune_script_trains(tiny_model_dir, fixture_files, tmp_path):
    import train_finetune

    out_dir = tmp_path / "finetune"
    train_finetune.main([*quick_flags(tiny_model_dir, fixture_files, out_dir), "--gradient_checkpointing"])
    _, run = check_outputs(out_dir, "finetune", n_test=4)
    assert run["config"]["training"]["gradient_checkpointing"] is True


@pytest.mark.parametrize("method", METHODS)
def test_generate_local_decodes_and_counts_generate_local_tokens(method, tiny_model_dir, tiny_tokenizer):
    model = build(method, tiny_model_dir)
    prompts = build_prompts(tiny_tokenizer, ARTICLES, DataArguments(prompt_template="{article}\nTL;DR:"))
    gen = GenerationArguments(max_new_tokens=8, generation_batch_size=2)
    tokens = generate_local_tokens(model, tiny_tokenizer, prompts, gen)
    assert all(tiny_tokenizer.eos_token_id not in row for row in tokens)
    assert generate_local(model, tiny_tokenizer, prompts, gen) == \
        [(tiny_tokenizer.decode(row, skip_special_tokens=True).strip(), len(row) == 8, len(row)) for row in tokens]


@pytest.mark.parametrize("method", METHODS)
def test_a_summary_is_cut_only_when_it_reaches_max_new_tokens_without_eos(method, tiny_model_dir, tiny_tokenizer):
    prompts = build_prompts(tiny_tokenizer, ARTICLES, DataArguments(prompt_template="{article}\nTL;DR:"))
    gen = GenerationArguments(max_new_tokens=5, generation_batch_size=2)
    model = build(method, tiny_model_dir)
    tokens = generate_local_tokens(model, tiny_tokenizer, prompts, gen)
    assert [s.cut for s in generate_local(model, tiny_tokenizer, prompts, gen)] == [len(t) == 5 for t in tokens]
    # Final norm -> constant EOS embedding: logits = wte @ (10 * wte[eos]), largest at EOS itself, so every
    # summary ends at once with EOS: empty and not cut.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    norm, eos = base.transformer.ln_f, tiny_tokenizer.eos_token_id
    with torch.no_grad():
        norm.weight.zero_()
        norm.bias.copy_(10 * base.transformer.wte.weight[eos])
    assert generate_local(model, tiny_tokenizer, prompts, gen) == [("", False, 0)] * len(prompts)


def test_soft_prompt_padding_stays_in_front_of_the_prompt(tiny_model_dir, tiny_tokenizer):
    # Local attention first, with a window shorter than the padding: padding between the soft prompt and
    # the text would hide the prompt from a padded row's early tokens, unlike the same prompt generated alone.
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, window_size=6, attention_layers=["local", "global"])
    model = build_method("soft_prompt", base, METHODS["soft_prompt"], ModelArguments(str(tiny_model_dir)))
    model = train_steps(model, a_batch(tiny_tokenizer), lr=5e-2)
    prompts = build_prompts(tiny_tokenizer, ARTICLES, DataArguments(prompt_template="{article}\nTL;DR:"))
    input_ids, mask = left_pad(prompts, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        embeds, full_mask = prompt_after_padding(model.get_prompt(batch_size=len(prompts)),
                                                 base.get_input_embeddings()(input_ids), mask)
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)  # as generate derives them from the mask
        batched = base(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions).logits[:, -1]
        single = torch.cat([model(input_ids=torch.tensor([p])).logits[:, -1] for p in prompts])
    assert_close(batched, single, rtol=1e-5, atol=1e-5)
    gen = GenerationArguments(max_new_tokens=12, generation_batch_size=3)
    batched_tokens = generate_local_tokens(model, tiny_tokenizer, prompts, gen)
    assert batched_tokens == [generate_local_tokens(model, tiny_tokenizer, [p], gen)[0] for p in prompts]
