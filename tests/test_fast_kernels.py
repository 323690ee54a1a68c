"""The fused kernels (common/models/fast_kernels.py) give what GPT-Neo's own classes give, to float rounding."""

from __future__ import annotations

import pytest
import torch

from common.models.fast_kernels import SDPASelfAttention, TanhGELU, eager_kernels, padded_mask, use_fast_kernels

LOW = torch.finfo(torch.float32).min


def small_window_model(seed: int = 0, window: int = 4):
    """A 2-block random GPT-Neo (global, local) whose local window (4) is shorter than the test rows."""
    from transformers import GPTNeoForCausalLM

    from common.models.tiny import tiny_config

    config = tiny_config(vocab_size=512)
    config.window_size = window
    torch.manual_seed(seed)
    return GPTNeoForCausalLM(config)


def left_padded_batch():
    """Two rows of 12 tokens, the first left-padded by 3; labels on the last 4 positions only (the summary)."""
    torch.manual_seed(1)
    ids = torch.randint(1, 512, (2, 12))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 8:] = ids[:, 8:]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def loss_logits_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), out.logits.detach(), grads


def test_use_fast_kernels_swaps_each_attention_and_activation_once():
    model = small_window_model()
    assert use_fast_kernels(model) == {"SDPASelfAttention": 2, "TanhGELU": 2}
    assert use_fast_kernels(model) == {}
    assert type(model.transformer.h[1].attn.attention) is SDPASelfAttention
    assert type(model.transformer.h[0].mlp.act) is TanhGELU


def test_fast_kernels_match_eager_loss_logits_and_gradients_with_left_padding_and_local_window():
    model = small_window_model().train()
    batch = left_padded_batch()
    eager_loss, eager_logits, eager_grads = loss_logits_grads(model, batch)
    use_fast_kernels(model)
    loss, logits, grads = loss_logits_grads(model, batch)
    real = batch["attention_mask"].bool()
    assert torch.allclose(loss, eager_loss, atol=1e-6)
    assert torch.allclose(logits[real], eager_logits[real], atol=1e-5)
    assert set(grads) == set(eager_grads)
    for name, grad in grads.items():
        assert torch.allclose(grad, eager_grads[name], atol=1e-5, rtol=1e-4), name


def test_the_local_window_is_applied():
    """With the window at 4, changing the first token moves the local block's output at position 11 only
    through the global block: the fused and eager outputs agree either way (a window left out would not)."""
    model = small_window_model(window=4).eval()
    fast = small_window_model(window=4).eval()
    use_fast_kernels(fast)
    wide = small_window_model(window=256).eval()
    use_fast_kernels(wide)
    ids = torch.randint(1, 512, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        eager_logits, fast_logits, wide_logits = (m(input_ids=ids).logits for m in (model, fast, wide))
    assert torch.allclose(fast_logits, eager_logits, atol=1e-5)
    assert not torch.allclose(wide_logits[0, 11], eager_logits[0, 11], atol=1e-3)


def test_greedy_generation_is_token_for_token_the_same(tiny_tokenizer):
    from common.config.arguments import GenerationArguments
    from common.generation.generate import generate_local_tokens

    model = small_window_model().eval()
    prompts = [[5, 17, 33, 2, 9, 101, 7], [44, 3, 8], [250, 251, 252, 253, 254, 255, 256, 257, 258]]
    settings = GenerationArguments(max_new_tokens=12, generation_batch_size=3)
    eager_tokens = generate_local_tokens(model, tiny_tokenizer, prompts, settings)
    use_fast_kernels(model)
    assert generate_local_tokens(model, tiny_tokenizer, prompts, settings) == eager_tokens
    assert [len(row) for row in eager_tokens] != [0, 0, 0]


def test_eager_kernels_restores_the_models_classes_inside_the_block_only():
    model = small_window_model()
    use_fast_kernels(model)
    with eager_kernels(model):
        assert type(model.transformer.h[0].attn.attention).__name__ == "GPTNeoSelfAttention"
        assert type(model.transformer.h[0].mlp.act).__name__ == "NewGELUActivation"
    assert type(model.transformer.h[0].attn.attention) is SDPASelfAttention
    assert type(model.transformer.h[0].mlp.act) is TanhGELU


def test_state_dict_is_unchanged_by_the_swap():
    model = small_window_model()
    before = model.state_dict()
    use_fast_kernels(model)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_padded_mask_on_a_hand_written_row():
    """Row 0 is padding (all its keys blocked by the padding mask): it keeps its causal key at 0; row 1 sees
    key 1 only (key 0 is padding), row 2 keys 1 and 2; later keys are -inf."""
    allowed = torch.tril(torch.ones(3, 3, dtype=torch.bool))[None, None]
    padding = torch.tensor([[[[LOW, LOW, LOW], [LOW, 0.0, LOW], [LOW, 0.0, 0.0]]]])
    mask = padded_mask(allowed, padding)[0, 0].tolist()
    inf = float("-inf")
    assert mask == [[0.0, inf, inf], [LOW, 0.0, inf], [LOW, 0.0, 0.0]]


def test_fp16_autocast_loss_stays_finite_and_matches_fp32_when_scores_overflow_fp16():
    """Query and key weights scaled up until GPT-Neo's unscaled scores pass fp16's maximum (65,504): under
    CPU fp16 autocast the model's own attention gives a non-finite loss (its fp32 upcast is undone by
    autocast); the fused attention computes fp16 scores in fp32 and gives the fp32 loss to fp16 rounding."""
    model = small_window_model()
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.attention.q_proj.weight.mul_(600)
            block.attn.attention.k_proj.weight.mul_(600)
    batch = left_padded_batch()
    use_fast_kernels(model)
    attention, first = model.transformer.h[0].attn.attention, model.transformer.h[0]
    with torch.no_grad():
        hidden = first.ln_1(model.transformer.wte(batch["input_ids"]) + model.transformer.wpe.weight[:12])
        query, key = (attention._split_heads(projection(hidden), attention.num_heads, attention.head_dim)
                      for projection in (attention.q_proj, attention.k_proj))
        largest_score = (query @ key.transpose(-1, -2)).abs().max().item()
    assert largest_score > torch.finfo(torch.float16).max  # the premise: the first block's scores overflow fp16
    loss32 = model(**batch).loss
    with torch.autocast("cpu", dtype=torch.float16):
        loss16 = model(**batch).loss
        with eager_kernels(model):
            eager16 = model(**batch).loss
    assert not torch.isfinite(eager16)
    assert torch.isfinite(loss16) and torch.isfinite(loss32)
    assert loss16.item() == pytest.approx(loss32.item(), rel=2e-2)


@pytest.mark.parametrize("flag, expected", [("true", "SDPASelfAttention"), ("false", "GPTNeoSelfAttention")])
def test_load_base_model_follows_the_fast_kernels_flag(tiny_model_dir, flag, expected):
    from common.config.arguments import ModelArguments
    from common.models.loading import load_base_model

    model = load_base_model(ModelArguments(model_name_or_path=str(tiny_model_dir), fast_kernels=flag == "true"))
    assert type(model.transformer.h[0].attn.attention).__name__ == expected
