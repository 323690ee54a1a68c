"""The in-place KV cache returns what transformers' concatenating cache returns, and generation is unchanged."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from common.generation.kv_cache import GrowingLayer, growing_cache
from transformers.cache_utils import DynamicLayer

from helpers import gpt_neo_with_short_window, small_llama


def states(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 2, length, 4, generator=generator),
            torch.randn(batch, 2, length, 4, generator=generator))


def test_growing_layer_matches_dynamic_layer_through_growth_and_batch_selection():
    growing, plain = GrowingLayer(reserve=2), DynamicLayer()
    for step, length in enumerate([3, 1, 1, 1, 2]):  # 3 + 2 reserve fill up at the 3rd single step: regrow
        new = states(3, length, seed=step)
        assert all(torch.equal(g, p) for g, p in zip(growing.update(*new), plain.update(*new)))
    assert growing.get_seq_length() == plain.get_seq_length() == 8
    keep = torch.tensor([2, 0])
    growing.batch_select_indices(keep)
    plain.batch_select_indices(keep)
    new = states(2, 1, seed=9)
    keys, values = growing.update(*new)
    plain_keys, plain_values = plain.update(*new)
    assert keys.shape == (2, 2, 9, 4)
    assert torch.equal(keys, plain_keys) and torch.equal(values, plain_values)


def test_growing_layer_writes_in_place_while_there_is_room():
    layer = GrowingLayer(reserve=4)
    keys, _ = layer.update(*states(1, 3, seed=0))
    buffer = keys.data_ptr()
    for seed in range(1, 5):
        keys, _ = layer.update(*states(1, 1, seed=seed))
        assert keys.data_ptr() == buffer  # no copy of the cached positions
    keys, _ = layer.update(*states(1, 1, seed=5))
    assert keys.data_ptr() != buffer and keys.shape[-2] == 8


def left_padded(prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("make_model", [gpt_neo_with_short_window, small_llama])
def test_generation_with_growing_cache_equals_default_cache(make_model):
    model = make_model()
    prompts = [[(7 * i + 3 * j) % 120 + 3 for j in range(n)] for i, n in enumerate((30, 22, 41, 12))]
    ids, mask = left_padded(prompts)
    config = GenerationConfig(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.inference_mode():
        default = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        cache = growing_cache(model.config, reserve=5)  # regrows once
        growing = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, cache=cache)
    assert default.shape == (4, 41 + 12)
    assert torch.equal(growing, default)
    assert cache.layers[0].get_seq_length() == 41 + 11  # the cache given was the one used
    assert cache.layers[0]._key_buffer.shape[-2] == (41 + 5) + 1 + 5  # regrown once, at position 47


def test_growing_cache_replaces_only_full_attention_layers():
    cache = growing_cache(small_llama().config, reserve=3)
    assert [type(layer).__name__ for layer in cache.layers] == ["GrowingLayer", "GrowingLayer"]
    assert cache.layers[0].reserve == 3


def test_ngram_blocking_counts_the_summary_only():
    from common.generation.generate import NoRepeatNGramInSummary

    ids = torch.tensor([[5, 6, 9, 5, 6, 5],    # prompt [5, 6, 9] holds "5 6": copying it is allowed once
                        [1, 2, 3, 4, 4, 4]])   # summary [4, 4, 4]: "4 4" twice already
    scores = NoRepeatNGramInSummary(2, start=3)(ids, torch.zeros(2, 10))
    assert torch.isinf(scores[0]).nonzero().flatten().tolist() == [6]   # summary has "5 6": 6 after 5 banned
    assert torch.isinf(scores[1]).nonzero().flatten().tolist() == [4]
    prompt_only = NoRepeatNGramInSummary(2, start=6)(ids, torch.zeros(2, 10))
    assert not torch.isinf(prompt_only).any()


@pytest.mark.parametrize("make_model", [gpt_neo_with_short_window, small_llama])
def test_batched_generation_with_ngram_blocking_equals_one_at_a_time(make_model):
    from common.generation.generate import generate_token_batch, summary_ngram_blocking

    model = make_model()
    prompts = [[(5 * i + 2 * j) % 120 + 3 for j in range(n)] for i, n in enumerate((25, 14, 33))]
    config = GenerationConfig(max_new_tokens=16, do_sample=False, pad_token_id=0, eos_token_id=2,
                              no_repeat_ngram_size=2)
    with torch.inference_mode():
        batched = generate_token_batch(model, *left_padded(prompts), config)
        single = [generate_token_batch(model, *left_padded([p]), config)[0] for p in prompts]
        plain = generate_token_batch(model, *left_padded(prompts), summary_ngram_blocking(config, 0)[0])
    assert batched == single
    for row in batched:
        bigrams = list(zip(row, row[1:]))
        assert len(bigrams) == len(set(bigrams))
    assert any(len(set(zip(r, r[1:]))) < len(r) - 1 for r in plain)  # unblocked, a random model repeats bigrams
