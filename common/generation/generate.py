"""Batched, length-sorted, KV-cached summary generation that gives the same tokens as one-at-a-time.

Prompts are token-id lists (see `data.prompts.build_prompts`). Each process generates its shard
(prompt i goes to process i % world_size), rows are left-padded and sorted by length so padding
stays small, and the shards are gathered back into prompt order, without duplicates, on every process.
A model sharded by FSDP is the exception: every forward pass gathers parameters from all processes,
so all of them must run the same forward passes; each generates every prompt instead (`fsdp_sharded`).

Every generation runs under one precision policy (`generation_precision`, `precision_context`): the run's
mixed precision as autocast (`--bf16` -> "bf16-autocast", `--fp16` -> "fp16-autocast"), else "fp32", the
same for every method, zero-shot and generation-only runs, whatever wrapper the model comes in (accelerate's
autocast wrapper, a merged LoRA copy, a soft prompt's base model). It runs under `torch.no_grad()`, not
`inference_mode`: a training step may follow (the learning curve), and tensors created in inference mode
(FSDP2's gathered-parameter buffers) could not be updated by it.

Soft prompts are handled without PEFT's prompt-tuning `generate` (wrong on transformers 5.x, and it
drops position ids): the base model's `generate` receives, per row, `inputs_embeds = [padding; virtual
tokens; token embeddings]` and the matching attention mask (see `prompt_after_padding`). Prefix tuning
too: PEFT's `generate` hands the prefix to the model as `past_key_values`, which transformers 5.x ignores for
the `cache` that `generate` passes (it warns "Both `past_key_values` and `cache` are set"), so the prompt is
read without the prefix. Here its learned keys and values start the KV cache, each row's after its padding
(`kv_cache.seed_prefix`), in our searches and in the stock path alike (`prefix_tuning_generate`).

Example (the tests' tiny random GPT-Neo, so the summaries are noise; batched gives what one at a time gives):
    >>> from common.config.arguments import DataArguments
    >>> from common.data.prompts import build_prompts
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> tokenizer = build_tokenizer()
    >>> tokenizer.pad_token = tokenizer.eos_token          # as `models.loading.load_tokenizer` does for GPT-Neo
    >>> model = build_tiny_model(len(tokenizer))
    >>> articles = ["Rain fell on Paris.", "The council approved the new budget on Tuesday after a long debate."]
    >>> prompts, gen_args = build_prompts(tokenizer, articles, DataArguments()), GenerationArguments(max_new_tokens=8)
    >>> summaries = generate_summaries_and_stops(model, tokenizer, prompts, gen_args)
    >>> one_at_a_time = [generate_summaries(model, tokenizer, [prompt], gen_args)[0] for prompt in prompts]
    >>> [summary.text for summary in summaries] == one_at_a_time
    True
    >>> [(summary.cut, summary.tokens) for summary in summaries]      # no EOS within 8 tokens: both cut
    [(True, 8), (True, 8)]
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import NamedTuple

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from peft import PeftModel
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from ..config.arguments import GenerationArguments
from ..data.prompts import left_pad
from ..methods import num_virtual_tokens, prefix_key_values, unwrap_peft
from ..methods.prefix_tuning import is_prefix_tuning_model
from .beam_search import beam_search, resolved_config, unsupported_settings
from .greedy import greedy_search
from .kv_cache import growing_cache, seed_prefix


class Summary(NamedTuple):
    """A generated summary, whether it was cut at `max_new_tokens` (no EOS) rather than ended by the model,
    and how many new token ids the model generated for it (EOS excluded)."""

    text: str
    cut: bool
    tokens: int


PRECISIONS = {"no": ("fp32", None), "bf16": ("bf16-autocast", torch.bfloat16),
              "fp16": ("fp16-autocast", torch.float16)}  # keyed by TrainingArguments.mixed_precision
AUTOCAST_DTYPES = dict(PRECISIONS.values())  # precision name -> autocast dtype (None: autocast off)


def generation_precision(mixed_precision: str) -> str:
    """The precision every generation of a run uses, from its resolved mixed precision
    (`TrainingArguments.mixed_precision`: --bf16/--fp16, or accelerate's config).

    Example:
        >>> generation_precision("bf16"), generation_precision("no")
        ('bf16-autocast', 'fp32')
    """
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed precision {mixed_precision!r}: generation supports {', '.join(PRECISIONS)}")
    return PRECISIONS[mixed_precision][0]


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device):
    """Autocast to the dtype `precision` names, or autocast off for "fp32", on `device`'s type.

    Explicit either way, so that a wrapper's own autocast (accelerate puts one around a prepared model's
    forward) never decides: inside, a forward pass computes as the policy says for every method.

    Example:
        >>> with precision_context("bf16-autocast", torch.device("cpu")):
        ...     torch.ones(2, 2) @ torch.ones(2, 2)
        tensor([[2., 2.],
                [2., 2.]], dtype=torch.bfloat16)
    """
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"generation precision {precision!r}: expected one of {', '.join(AUTOCAST_DTYPES)}")
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        with torch.autocast(device.type, dtype=dtype):
            yield


def generation_config(gen_args: GenerationArguments, tokenizer) -> GenerationConfig:
    """Deterministic decoding settings (greedy or beam), independent of the model's own defaults."""
    return GenerationConfig(max_new_tokens=gen_args.max_new_tokens, num_beams=gen_args.num_beams, do_sample=False,
                            no_repeat_ngram_size=gen_args.no_repeat_ngram_size, pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)


def cut_at_eos(tokens: list[int], eos_id: int | list[int] | None) -> list[int]:
    """Tokens before the first EOS (any of them, when the model has several).

    Example:
        >>> cut_at_eos([5, 6, 0, 7], eos_id=0), cut_at_eos([5, 9, 6, 0], eos_id=[0, 6])
        ([5, 6], [5, 9])
    """
    stops = {eos_id} if isinstance(eos_id, int) else set(eos_id or ())
    return next((tokens[:i] for i, token in enumerate(tokens) if token in stops), tokens)


def generate_token_batch(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         config: GenerationConfig, in_place_cache: bool = True) -> list[list[int]]:
    """New tokens for a left-padded batch, (batch, prompt_len) -> one list per row, EOS and after removed.

    Greedy decoding runs `greedy.greedy_search` (the in-place cache, finished rows leaving the batch), beam
    search `beam_search.beam_search` (each prompt prefilled once, the cache reordered in place); both give
    `generate`'s tokens. `in_place_cache=False` runs stock `generate` with its default cache (the
    benchmarks' and tests' reference; prefix tuning: with the prefix in our cache, `prefix_tuning_generate`).
    So does a model sharded by FSDP
    over several processes (every step must run on all of them) and a model whose generation config asks
    for processors `beam_search` does not apply (`beam_search.unsupported_settings`).
    """
    virtual = num_virtual_tokens(model)
    greedy = config.num_beams == 1
    # FSDP: keep stepping until every process's batch is done, as every step gathers parameters
    # (None leaves the choice to transformers, which makes it for DeepSpeed ZeRO-3 itself).
    synced = True if fsdp_sharded(model) and PartialState().num_processes > 1 else None
    if in_place_cache and not synced and own_search_applies(model, config):
        return own_search_batch(model, input_ids, attention_mask, config, virtual)
    if is_prefix_tuning_model(model):
        return prefix_tuning_generate(model, input_ids, attention_mask, config, synced)
    cache = growing_cache(model.config, reserve=config.max_new_tokens) if in_place_cache and greedy else None
    # From embeddings, generate returns (and its processors see) only the new ids; else prompt + new ids.
    config, processors = summary_ngram_blocking(config, start=0 if virtual else input_ids.shape[1])
    if virtual:
        base = model.get_base_model()
        embeds = base.get_input_embeddings()(input_ids)
        prompt = model.get_prompt(batch_size=input_ids.shape[0]).to(embeds.dtype)
        embeds, mask = prompt_after_padding(prompt, embeds, attention_mask)
        new_tokens = base.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=config,
                                   logits_processor=processors, cache=cache, synced_gpus=synced)
    else:
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                                logits_processor=processors, cache=cache, synced_gpus=synced)
        new_tokens = output[:, input_ids.shape[1]:]
    return [cut_at_eos(row, config.eos_token_id) for row in new_tokens.tolist()]


def prefix_tuning_generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, config: GenerationConfig,
                           synced: bool | None = None) -> list[list[int]]:
    """Stock `generate` of the transformers model for a prefix-tuning model, the prefix in its cache: rows as
    `generate_token_batch` returns them.

    The prefix starts a growing cache, each row's after its padding as our searches place it
    (`kv_cache.seed_prefix`; transformers' own cache could only hold it before the padding), seeded for the
    prompts times the beams (`generate` expands its inputs, not a cache it is given); placeholder ids stand in
    `input_ids` for the positions the cache already holds, so `generate` feeds the prompts alone and counts
    their position ids from the prefix's length, as training does.
    """
    base, beams, rows = transformers_model(model), config.num_beams or 1, input_ids.shape[0]
    cache = growing_cache(base.config, reserve=config.max_new_tokens)
    expanded = attention_mask.repeat_interleave(beams, dim=0)
    mask = seed_prefix(cache, prefix_key_values(model, rows * beams), expanded)[::beams]
    held = mask.shape[1] - input_ids.shape[1]
    placeholders = input_ids.new_full((rows, held), config.pad_token_id if config.pad_token_id is not None else 0)
    ids = torch.cat([placeholders, input_ids], dim=1)
    config, processors = summary_ngram_blocking(config, start=ids.shape[1])
    output = base.generate(input_ids=ids, attention_mask=mask, generation_config=config, logits_processor=processors,
                           cache=cache, synced_gpus=synced)
    return [cut_at_eos(row, config.eos_token_id) for row in output[:, ids.shape[1]:].tolist()]


def own_search_applies(model, config: GenerationConfig) -> bool:
    """Whether our searches apply every setting `generate` would use for `model` (else `generate` runs)."""
    return not unsupported_settings(resolved_config(transformers_model(model), config))


def own_search_batch(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, config: GenerationConfig,
                     virtual: int) -> list[list[int]]:
    """`beam_search` (beams) or `greedy_search` on the transformers model inside any PEFT wrapper (injected
    adapters run inside it); a soft prompt goes in as embeddings, placed as `generate`'s path places it
    (`prompt_after_padding`); prefix tuning's keys and values start the cache (`beam_search.prefill`)."""
    search = greedy_search if config.num_beams == 1 else beam_search
    base = transformers_model(model)
    if not virtual:
        return search(base, input_ids, attention_mask, config, prefix=prefix_key_values(model, input_ids.shape[0]))
    embeds = base.get_input_embeddings()(input_ids)
    prompt = model.get_prompt(batch_size=input_ids.shape[0]).to(embeds.dtype)
    embeds, mask = prompt_after_padding(prompt, embeds, attention_mask)
    return search(base, None, mask, config, inputs_embeds=embeds)


def transformers_model(model):
    """The transformers model inside DDP/compile and PEFT wrappers (adapters injected into it run in it)."""
    model = unwrap_peft(model)
    return model.get_base_model() if isinstance(model, PeftModel) else model


class NoRepeatNGramInSummary(LogitsProcessor):
    """Forbid a token that would repeat an n-gram of the generated summary, ignoring the prompt.

    transformers' `no_repeat_ngram_size` looks at the whole decoder input, which for a causal LM holds
    the article: it would forbid copying any n-gram of the article, which summaries must do. Here only
    positions from `start` (the padded prompt width) on count. input_ids (batch, start + generated).

    Example:
        >>> ids = torch.tensor([[7, 8, 9, 5, 6, 5]])   # prompt [7, 8, 9], summary [5, 6, 5]
        >>> NoRepeatNGramInSummary(2, start=3)(ids, torch.zeros(1, 10))[0, 6]   # "5 6" again: banned
        tensor(-inf)
    """

    def __init__(self, size: int, start: int):
        self.size, self.start = size, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = self.size
        for row, tokens in enumerate(input_ids[:, self.start:].tolist()):
            if len(tokens) < n - 1:
                continue
            prefix = tokens[len(tokens) - n + 1:]
            banned = [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i:i + n - 1] == prefix]
            if banned:
                scores[row, banned] = -float("inf")
        return scores


def summary_ngram_blocking(config: GenerationConfig, start: int) -> tuple[GenerationConfig, LogitsProcessorList]:
    """`config` without transformers' prompt-wide n-gram blocking, and our summary-only one in its place."""
    size = config.no_repeat_ngram_size or 0
    if size <= 0:
        return config, LogitsProcessorList()
    config = copy.deepcopy(config)
    config.no_repeat_ngram_size = None
    return config, LogitsProcessorList([NoRepeatNGramInSummary(size, start)])


def prompt_after_padding(prompt: torch.Tensor, embeds: torch.Tensor,
                         attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `[padding][virtual tokens][text]` from left-padded `[padding][text]` embeddings and mask.

    Not `[virtual tokens][padding][text]`: attention masks the padding either way, but sliding-window
    attention (GPT-Neo's local layers) counts its window in positions, so padding between the soft
    prompt and the text would hide the prompt from a padded row's early tokens, unlike the same prompt
    generated alone.
    """
    pads = (attention_mask == 0).sum(dim=1).tolist()
    ones = attention_mask.new_ones(prompt.shape[1])
    rows = [torch.cat([e[:k], p, e[k:]]) for e, p, k in zip(embeds, prompt, pads)]
    masks = [torch.cat([m[:k], ones, m[k:]]) for m, k in zip(attention_mask, pads)]
    return torch.stack(rows), torch.stack(masks)


def generate_local_tokens(model, tokenizer, prompts: list[list[int]], gen_args: GenerationArguments,
                          precision: str = "fp32") -> list[list[int]]:
    """New token ids for `prompts` on this process (EOS and after removed), in input order.

    The longest prompts go first and each batch is left-padded to its own longest prompt only. Runs in
    eval mode, without gradients, under `precision_context(precision)`.
    """
    if not prompts:
        return []
    config = generation_config(gen_args, tokenizer)
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    results: dict[int, list[int]] = {}
    clock = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), precision_context(precision, device):
            for start in range(0, len(order), gen_args.generation_batch_size):
                batch = order[start:start + gen_args.generation_batch_size]
                input_ids, mask = left_pad([prompts[i] for i in batch], tokenizer.pad_token_id)
                tokens = generate_token_batch(model, input_ids.to(device), mask.to(device), config)
                results.update(zip(batch, tokens))
                report_progress(len(results), len(prompts), clock)
    finally:
        model.train(was_training)
    return [results[i] for i in range(len(prompts))]


def report_progress(done: int, total: int, since: float) -> None:
    """One line per batch on the main process, for runs long enough to need it (more than 16 prompts)."""
    if total > 16 and PartialState().is_local_main_process:
        print(f"Generating: {done}/{total} prompts on this process, {time.perf_counter() - since:.0f} s", flush=True)


def cut_at_limit(tokens: list[int], gen_args: GenerationArguments) -> bool:
    """Whether a summary's new tokens (EOS and after removed) stopped at `max_new_tokens`, not at EOS.

    Generation stops a row at EOS or at the limit, so a row that kept all `max_new_tokens` tokens never
    produced EOS: it was cut, most likely mid-sentence.

    Example:
        >>> cut_at_limit([5, 6, 7], GenerationArguments(max_new_tokens=3)), cut_at_limit([5, 6], GenerationArguments(max_new_tokens=3))
        (True, False)
    """
    return len(tokens) >= gen_args.max_new_tokens


def generate_local(model, tokenizer, prompts: list[list[int]], gen_args: GenerationArguments,
                   precision: str = "fp32") -> list[Summary]:
    """Generate summaries for `prompts` on this process, in input order: (text, cut at the limit, new tokens)."""
    return [Summary(tokenizer.decode(row, skip_special_tokens=True).strip(), cut_at_limit(row, gen_args), len(row))
            for row in generate_local_tokens(model, tokenizer, prompts, gen_args, precision)]


def generate_summaries(model, tokenizer, prompts: list[list[int]], gen_args: GenerationArguments,
                       precision: str = "fp32") -> list[str]:
    """Shard prompts over processes, generate, gather in prompt order (every process gets the full list)."""
    return [summary.text for summary in generate_summaries_and_stops(model, tokenizer, prompts, gen_args, precision)]


def generate_summaries_and_stops(model, tokenizer, prompts: list[list[int]], gen_args: GenerationArguments,
                                 precision: str = "fp32") -> list[Summary]:
    """`generate_summaries`, each summary with whether it was cut at `max_new_tokens` instead of ending with
    EOS and its count of new tokens."""
    state = PartialState()
    if fsdp_sharded(model):  # every forward pass is collective: every process runs every prompt, in step
        return generate_local(model, tokenizer, prompts, gen_args, precision)
    indices = list(range(state.process_index, len(prompts), state.num_processes))
    local = generate_local(model, tokenizer, [prompts[i] for i in indices], gen_args, precision)
    pairs = list(zip(indices, local))
    if state.num_processes > 1:
        pairs = gather_object(pairs)
    by_index = dict(pairs)
    missing = [i for i in range(len(prompts)) if i not in by_index]
    if missing:
        raise RuntimeError(f"generation lost prompts {missing[:5]} while gathering across processes")
    return [by_index[i] for i in range(len(prompts))]


def fsdp_sharded(model) -> bool:
    """Whether FSDP (1 or 2) shards any part of `model`, so that its forward passes are collective."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    return any(isinstance(module, (FSDPModule, FullyShardedDataParallel)) for module in model.modules())


