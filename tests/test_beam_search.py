"""Our beam search gives the tokens of `transformers.generate(num_beams=N)`, batched as one at a time.

Real prompts: 32 CNN/DailyMail test articles from ../shared/data/cnn_dailymail when present, else the 32
first hand-written articles of data/sample (CI), cut to at most 16 tokens (five lengths, so batches are
left-padded) so that stock beam search, which prefills every prompt N times, stays quick. The GPT-Neo
model has GPT-Neo-125M's width, heads and vocabulary with two of its blocks (one global, one local
attention with an 8-token window, so the window cuts into the prompts), fed SmolLM2's ids when its folder
is prepared, else the tiny tokenizer's (CI runs these tests too); `benchmarks/benchmark.py
--generation_only` makes the same comparison (`same_generations`) on the full 12-block model and SmolLM2 with
512-token prompts. Every comparison
goes through `generate_token_batch`: ours (`in_place_cache=True`, `beam_search`) against stock `generate`
(`in_place_cache=False`), with the same summary-only n-gram blocking. Random weights rarely choose any
one token, so each model's EOS is the token stock search generates most (hypotheses then finish at many
lengths, exercising the scoring of finished hypotheses); SmolLM2's EOS is ".", which ends its sentences.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig, GPTNeoConfig, GPTNeoForCausalLM

from common.data.prompts import left_pad
from common.generation.generate import generate_token_batch, summary_ngram_blocking
from common.models.tiny import build_tiny_model, build_tokenizer, gpt_neo_125m_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_TEST = ROOT.parent / "shared" / "data" / "cnn_dailymail" / "test.jsonl"
SMOLLM2 = ROOT / ".cache" / "smollm2-135m-instruct"
PROMPTS, PROMPT_TOKENS, NEW_TOKENS = 32, 16, 6


def real_articles(count: int = PROMPTS) -> list[str]:
    source = SHARED_TEST if SHARED_TEST.is_file() else None
    files = [source] if source else sorted((ROOT / "data" / "sample").glob("*.jsonl"))
    rows = [json.loads(line) for path in files for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) >= count
    return [row["article"] for row in rows[:count]]


def prompts_for(tokenizer, count: int = PROMPTS) -> list[list[int]]:
    """Real articles' first tokens, of five different lengths so that batches are left-padded."""
    ids = tokenizer(real_articles(count), add_special_tokens=False)["input_ids"]
    return [row[:PROMPT_TOKENS - 2 * (i % 5)] for i, row in enumerate(ids)]


def config_for(beams: int, eos: int, pad: int, ngram: int = 0, **extra) -> GenerationConfig:
    return GenerationConfig(num_beams=beams, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos,
                            pad_token_id=pad, no_repeat_ngram_size=ngram, **extra)


def ours_and_stock(model, prompts, config, pad: int) -> tuple[list, list]:
    ids, mask = left_pad(prompts, pad)
    with torch.no_grad():
        return (generate_token_batch(model, ids, mask, config),
                generate_token_batch(model, ids, mask, config, in_place_cache=False))


def most_generated_tokens(model, prompts, pad: int, count: int = 1) -> list[int]:
    """The `count` tokens stock beam search generates most often on `prompts` (without any EOS)."""
    with torch.no_grad():
        new = generate_token_batch(model, *left_pad(prompts, pad), config_for(2, eos=None, pad=pad),
                                   in_place_cache=False)
    return [token for token, _ in collections.Counter(token for row in new for token in row).most_common(count)]


def most_generated_token(model, prompts, pad: int) -> int:
    return most_generated_tokens(model, prompts, pad)[0]


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    if not (SMOLLM2 / "config.json").is_file():
        pytest.skip("the offline SmolLM2 folder is not prepared (python -m common.offline_model)")
    return AutoTokenizer.from_pretrained(SMOLLM2)


@pytest.fixture(scope="module")
def prompt_tokenizer():
    """SmolLM2's tokenizer when its folder is prepared, else the tiny model's (CI, before any demo): either way
    the ids fit GPT-Neo-125M's vocabulary, and the GPT-Neo tests run."""
    from transformers import AutoTokenizer

    if (SMOLLM2 / "config.json").is_file():
        return AutoTokenizer.from_pretrained(SMOLLM2)
    tokenizer = build_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@pytest.fixture(scope="module")
def gpt_neo_125m():
    """GPT-Neo-125M's width, heads and vocabulary, two blocks, random weights (fed SmolLM2's or the tiny ids)."""
    full = gpt_neo_125m_config()
    config = GPTNeoConfig(vocab_size=full.vocab_size, hidden_size=full.hidden_size, num_heads=full.num_heads,
                          num_layers=2, attention_types=[[["global", "local"], 1]], window_size=8,
                          max_position_embeddings=full.max_position_embeddings, bos_token_id=full.bos_token_id,
                          eos_token_id=full.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    return GPTNeoForCausalLM(config).eval()


def soft_prompted(model):
    import copy

    from peft import PromptTuningConfig, TaskType, get_peft_model

    torch.manual_seed(1)
    peft_model = get_peft_model(copy.deepcopy(model), PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=6))
    with torch.no_grad():
        for p in peft_model.prompt_encoder.parameters():
            p.normal_(0, 0.5)
    return peft_model.eval()


def merged_lora(model):
    import copy

    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(2)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(task_type=TaskType.CAUSAL_LM, r=4,
                                                                 target_modules="all-linear"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return peft_model.merge_and_unload().eval()


CASES = [(beams, ngram) for beams in (2, 4) for ngram in (0, 3)]


@pytest.mark.parametrize("variant", ["plain", "soft_prompt", "merged_lora"])
def test_gpt_neo_125m_width_beam_search_gives_generates_tokens_on_32_real_prompts(gpt_neo_125m, prompt_tokenizer,
                                                                                 variant):
    """Every case (N = 2 and 4, with and without blocking) for the plain model; N = 4 with blocking for the
    soft prompt (the embeddings path) and the merged LoRA."""
    prompts, pad = prompts_for(prompt_tokenizer), prompt_tokenizer.pad_token_id
    model = {"plain": lambda m: m, "soft_prompt": soft_prompted, "merged_lora": merged_lora}[variant](gpt_neo_125m)
    eos = most_generated_token(model, prompts, pad)
    lengths = set()
    for beams, ngram in CASES if variant == "plain" else [(4, 3)]:
        ours, stock = ours_and_stock(model, prompts, config_for(beams, eos, pad, ngram), pad)
        assert sum(a == b for a, b in zip(ours, stock)) == len(prompts) == 32, (beams, ngram)
        lengths.update(map(len, ours))
    if variant == "plain":
        assert len(lengths) > 1  # hypotheses finished at several lengths, not all at max_new_tokens


def test_smollm2_beam_search_gives_generates_tokens_on_32_real_prompts(smollm2_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(SMOLLM2).eval()
    prompts, pad = prompts_for(smollm2_tokenizer), smollm2_tokenizer.pad_token_id
    period = smollm2_tokenizer(".", add_special_tokens=False)["input_ids"][0]
    for model in (model, soft_prompted(model)):
        ours, stock = ours_and_stock(model, prompts, config_for(4, period, pad, 3), pad)
        assert sum(a == b for a, b in zip(ours, stock)) == len(prompts) == 32


def test_batched_beam_search_equals_each_prompt_alone(gpt_neo_125m, prompt_tokenizer):
    prompts, pad = prompts_for(prompt_tokenizer, 12), prompt_tokenizer.pad_token_id
    config = config_for(4, None, pad, ngram=3)
    with torch.no_grad():  # EOS: a token the search picks early in some rows, so that articles end at different steps
        endless = generate_token_batch(gpt_neo_125m, *left_pad(prompts, pad), config, in_place_cache=False)
        # the first of the early tokens (most common first) with which the articles end at different steps: which
        # one does depends on the prompts (real rows when ../shared has them, else the bundled sample)
        for eos, _ in collections.Counter(token for row in endless for token in row[1:4]).most_common(8):
            config.eos_token_id = eos
            batched = generate_token_batch(gpt_neo_125m, *left_pad(prompts, pad), config)
            if len(set(map(len, batched))) > 1:
                break
        alone = [generate_token_batch(gpt_neo_125m, *left_pad([p], pad), config)[0] for p in prompts]
    assert batched == alone
    assert len(set(map(len, batched))) > 1  # articles left the batch at different steps


@pytest.mark.parametrize("settings", [
    dict(num_beams=3), dict(num_beams=3, length_penalty=0.5), dict(num_beams=3, length_penalty=2.0),
    dict(num_beams=4, early_stopping=True), dict(num_beams=4, early_stopping="never"),
    dict(num_beams=4, early_stopping="never", length_penalty=-1.0), dict(num_beams=2, no_repeat_ngram_size=2),
])
def test_tiny_model_beam_search_matches_generate_for_every_scoring_setting(settings):
    tokenizer = build_tokenizer()
    torch.manual_seed(3)
    model = build_tiny_model(len(tokenizer)).eval()
    prompts = [row[:30 - 3 * (i % 4)] for i, row in enumerate(tokenizer(real_articles(24))["input_ids"])]
    config = GenerationConfig(max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0, **settings)
    with torch.no_grad():
        endless = generate_token_batch(model, *left_pad(prompts, 0), config, in_place_cache=False)
    # Several EOS ids (4 x N candidates a step): tokens the search picks at step 4 of some rows, so they end early.
    config.eos_token_id = sorted({row[3] for row in endless[:3]})
    ours, stock = ours_and_stock(model, prompts, config, pad=0)
    assert ours == stock


def test_a_setting_our_search_does_not_apply_falls_back_to_generate():
    tokenizer = build_tokenizer()
    model = build_tiny_model(len(tokenizer)).eval()
    prompts = [row[:30] for row in tokenizer(real_articles(4))["input_ids"]]
    config = GenerationConfig(num_beams=2, max_new_tokens=6, do_sample=False, eos_token_id=0, pad_token_id=0,
                              repetition_penalty=1.3)
    ours, stock = ours_and_stock(model, prompts, config, pad=0)
    assert ours == stock  # both ran generate, which applies the repetition penalty


def test_stock_reference_blocks_repeats_within_the_summary_only():
    """The stock path's n-gram blocking is ours (`summary_ngram_blocking`), not transformers' prompt-wide one."""
    config, processors = summary_ngram_blocking(config_for(2, eos=0, pad=0, ngram=3), start=40)
    assert config.no_repeat_ngram_size is None and processors[0].start == 40


@pytest.mark.parametrize("variant", ["plain", "soft_prompt"])
def test_greedy_search_gives_generates_tokens_on_32_real_prompts(gpt_neo_125m, prompt_tokenizer, variant):
    """Our greedy loop (finished rows leave the batch) against stock greedy `generate`, with and without blocking."""
    prompts, pad = prompts_for(prompt_tokenizer), prompt_tokenizer.pad_token_id
    model = gpt_neo_125m if variant == "plain" else soft_prompted(gpt_neo_125m)
    eos = most_generated_token(model, prompts, pad)
    for ngram in (0, 3):
        ours, stock = ours_and_stock(model, prompts, config_for(1, eos, pad, ngram), pad)
        assert sum(a == b for a, b in zip(ours, stock)) == len(prompts) == 32, ngram
    if variant == "plain":
        assert len(set(map(len, ours))) > 1  # rows left the batch at different steps


def test_tiny_model_greedy_search_matches_generate_with_several_eos_ids():
    tokenizer = build_tokenizer()
    torch.manual_seed(4)
    model = build_tiny_model(len(tokenizer)).eval()
    prompts = [row[:30 - 3 * (i % 4)] for i, row in enumerate(tokenizer(real_articles(24))["input_ids"])]
    config = GenerationConfig(max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        endless = generate_token_batch(model, *left_pad(prompts, 0), config, in_place_cache=False)
    config.eos_token_id = sorted({row[3] for row in endless[:3]} | {row[6] for row in endless[3:6]})
    ours, stock = ours_and_stock(model, prompts, config, pad=0)
    assert ours == stock
    assert len(set(map(len, ours))) > 2
