"""Prefix tuning: generation against references that do not use our searches, batched equal to one at a time on
left-padded prompts longer than GPT-Neo's local window, the prefix placed after each row's padding, the MLP
variant's adapter. Training, resume, the Hub round trip and the parameter counts run with every method
(test_methods.py, test_end_to_end.py, test_resume_export_hub.py); refused flags in test_bad_input.py."""

import pytest
import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from safetensors.torch import load_file
from torch.testing import assert_close
from transformers import AutoModelForCausalLM, DynamicCache, GenerationConfig

from common.generation.generate import generate_token_batch, transformers_model
from common.generation.kv_cache import growing_cache, seed_prefix
from common.methods import (PrefixTuningArguments, count_parameters, load_trained, num_virtual_tokens,
                            prefix_key_values, save_trained, trains_prompt_encoder)
from common.data.prompts import left_pad
import helpers
from helpers import a_batch, build, small_llama, train_steps

VIRTUAL = 5


def gpt_neo_with_short_window():
    """Local attention first, window 8: shorter than every prompt below and than the prefix plus a prompt."""
    return helpers.gpt_neo_with_short_window(local_first=True)


def with_prefix(base, projection=False):
    torch.manual_seed(1)
    config = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=VIRTUAL,
                                prefix_projection=projection, encoder_hidden_size=16)
    return get_peft_model(base, config).eval()


PROMPTS = [[(7 * i + 3 * j) % 120 + 3 for j in range(n)] for i, n in enumerate((30, 22, 41, 12))]


def reference_greedy(model, prompt, max_new_tokens, eos):
    """Greedy decoding through the PEFT model's own forward (which puts the prefix in front itself), the whole
    sequence again at every step, no cache, one prompt alone: nothing of our generation code."""
    tokens = []
    for _ in range(max_new_tokens):
        logits = model(input_ids=torch.tensor([prompt + tokens]), use_cache=False).logits[0, -1]
        token = int(logits.argmax())
        if token == eos:
            break
        tokens.append(token)
    return tokens


def reference_beams(model, prompt, config):
    """transformers' own beam search (`generate`) on the base model for one unpadded prompt, its default cache
    started with the prefix's keys and values (the prefix's positions stand in `input_ids` as padding ids that
    the cache already covers, so the text's positions start at the prefix's length, as in training)."""
    base = transformers_model(model)
    cache = DynamicCache(config=base.config)  # generate expands its inputs to the beams, not a cache it is given
    for layer, (keys, values) in enumerate(prefix_key_values(model, batch_size=config.num_beams)):
        cache.update(keys.clone(), values.clone(), layer)
    ids = torch.tensor([[config.pad_token_id] * VIRTUAL + prompt])
    output = base.generate(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, generation_config=config)
    new = output[0, ids.shape[1]:].tolist()
    return new[:new.index(config.eos_token_id)] if config.eos_token_id in new else new


@pytest.mark.parametrize("projection", [False, True], ids=["prefix", "mlp"])
@pytest.mark.parametrize("make_model", [gpt_neo_with_short_window, small_llama])
def test_greedy_and_beams_equal_references_and_batched_equals_one_at_a_time(make_model, projection):
    """Ours (greedy, beams) against the references one prompt at a time; batched, one at a time and the stock path
    (transformers' `generate` with the prefix in our cache) give the same tokens."""
    model = with_prefix(make_model(), projection)
    ids, mask = left_pad(PROMPTS, pad_id=0)
    greedy = GenerationConfig(max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=2)
    beams = GenerationConfig(max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=2, num_beams=3)
    with torch.no_grad():
        ours_greedy = generate_token_batch(model, ids, mask, greedy)
        ours_beams = generate_token_batch(model, ids, mask, beams)
        assert ours_greedy == [reference_greedy(model, p, 10, eos=2) for p in PROMPTS]
        assert ours_beams == [reference_beams(model, p, beams) for p in PROMPTS]
        for config, batched in ((greedy, ours_greedy), (beams, ours_beams)):
            assert batched == [generate_token_batch(model, *left_pad([p], pad_id=0), config)[0] for p in PROMPTS]
            assert batched == generate_token_batch(model, ids, mask, config, in_place_cache=False)  # stock generate
        without_prefix = generate_token_batch(transformers_model(model), ids, mask, greedy)
    assert without_prefix != ours_greedy  # the prefix changes what the model says


def test_the_prefix_goes_after_each_rows_padding_under_local_attention():
    """A padded row's last token sees the prefix through the local window (8 positions) as when alone: placed after
    the padding, the row gives the logits of the row alone; PEFT's own forward, which puts the prefix at the start
    of the row, before the padding, does not (the same position ids in both)."""
    model = with_prefix(gpt_neo_with_short_window())
    base = transformers_model(model)
    short = [5, 6, 7]
    ids, mask = left_pad([list(range(10, 22)), short], pad_id=0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([short])).logits[0, -1]
        in_front = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[1, -1]
        cache = growing_cache(base.config, reserve=0)
        full_mask = seed_prefix(cache, prefix_key_values(model, 2), mask)
        after = base(input_ids=ids, attention_mask=full_mask, position_ids=positions + VIRTUAL, cache=cache).logits
    assert full_mask[1].tolist() == [0] * 9 + [1] * (VIRTUAL + 3)
    assert_close(after[1, -1], alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(in_front, alone, rtol=1e-3, atol=1e-3)


def test_prefix_key_values_per_layer_and_none_for_other_methods():
    model = with_prefix(small_llama())
    layers = prefix_key_values(model, batch_size=3)
    assert [tuple(k.shape) for k, v in layers] == [(3, 2, VIRTUAL, 8)] * 2  # 2 key/value heads of 8
    prompt = model.get_prompt(batch_size=3)
    for (keys, values), layer in zip(layers, prompt.layers):
        assert torch.equal(keys, layer.keys) and torch.equal(values, layer.values)
    assert prefix_key_values(transformers_model(model), 3) is None and num_virtual_tokens(model) == 0


def test_the_mlp_variant_trains_its_encoder_and_saves_the_prefix(tiny_model_dir, tiny_tokenizer, tmp_path):
    args = PrefixTuningArguments(num_virtual_tokens=4, prefix_projection=True, encoder_hidden_size=16)
    model = train_steps(build("prefix_tuning", tiny_model_dir, args), a_batch(tiny_tokenizer))
    d, layers = 64, 2
    assert trains_prompt_encoder(model)
    assert count_parameters(model).trainable == 4 * d + (d * 16 + 16) + (16 * layers * 2 * d + layers * 2 * d)
    folder = save_trained(model, tmp_path / "adapter", "prefix_tuning", str(tiny_model_dir))
    saved = load_file(folder / "adapter_model.safetensors")
    assert list(saved) == ["prompt_embeddings"] and saved["prompt_embeddings"].shape == (4, layers * 2 * d)
    reloaded = load_trained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), folder).eval()
    assert not trains_prompt_encoder(reloaded) and not hasattr(reloaded.prompt_encoder.default, "transform")
    for (keys, values), (again_keys, again_values) in zip(prefix_key_values(model, 2), prefix_key_values(reloaded, 2)):
        assert_close(again_keys, keys, rtol=0, atol=0)
        assert_close(again_values, values, rtol=0, atol=0)
