"""Beam search that prefills each prompt once and keeps the KV cache in place: the tokens of
`transformers.generate(num_beams=N)`, at a fraction of its cost.

`generate` copies every prompt to N rows before the prefill, so the prompt (about half of the work for
512-token articles) is computed N times, and at every step it re-concatenates and re-indexes the whole
cache of every layer (`DynamicLayer.update`, `reorder_cache`). Here:

1. the prompts are prefilled once, (batch, prompt_len), into a `kv_cache.GrowingLayer` cache;
2. the cache is expanded to the beams by index into buffers with room for every new token,
   (batch * N, heads, prompt_len + max_new_tokens, head_dim);
3. each step writes the new keys and values in place, and reorders only the generated positions: every
   beam of an article holds the same prompt states, and beams only ever move within their article;
4. an article whose result can no longer change (transformers' early-stop heuristic) leaves the batch.

Scoring follows transformers' `_beam_search` step for step: log-softmax over fp32 logits, the
accumulated log-probabilities of all beams, the top `max(2, 1 + number of EOS ids) * N` candidates,
finished hypotheses scored with `length_penalty` over the generated length, `early_stopping`
True / False / "never", and the same early-stop heuristic, so the tokens are the same
(`tests/test_beam_search.py` compares them with `generate` on real prompts). Repeated n-grams are blocked
within the summary only (`generate.NoRepeatNGramInSummary`), as in every generation of this project.

Example (the tests' tiny random GPT-Neo; two left-padded prompts, 3 beams):
    >>> from transformers import GenerationConfig
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> tokenizer = build_tokenizer()
    >>> model = build_tiny_model(len(tokenizer)).eval()
    >>> ids = torch.tensor([[0, 0, 11, 12, 13], [21, 22, 23, 24, 25]])
    >>> mask = (torch.arange(5) >= torch.tensor([[2], [0]])).long()
    >>> config = GenerationConfig(num_beams=3, max_new_tokens=6, do_sample=False, eos_token_id=0, pad_token_id=0)
    >>> with torch.no_grad():
    ...     ours = beam_search(model, ids, mask, config)
    ...     stock = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, 5:].tolist()
    >>> ours == [row[:row.index(0)] if 0 in row else row for row in stock]
    True
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch

from .kv_cache import GrowingLayer, growing_cache, seed_prefix, select_cache_rows

NEG = -1.0e9  # transformers' "impossible" score


@dataclass
class BeamState:
    """Per-article beam search state, as transformers keeps it (B articles, N beams, T = max_new_tokens).

    running_tokens / finished_tokens: (B, N, T) generated ids; running_scores / finished_scores: (B, N)
    accumulated log-probabilities (finished ones divided by the length penalty); running_parents:
    (B, N, T) the flat row each token's beam came from (-1 where none, which gives the generated length);
    finished_parents likewise for the finished hypotheses; is_finished: (B, N); improvable: (B, 1),
    transformers' `is_early_stop_heuristic_unsatisfied`.
    """

    running_tokens: torch.Tensor
    running_scores: torch.Tensor
    running_parents: torch.Tensor
    finished_tokens: torch.Tensor
    finished_scores: torch.Tensor
    finished_parents: torch.Tensor
    is_finished: torch.Tensor
    improvable: torch.Tensor

    @classmethod
    def start(cls, articles: int, beams: int, max_new_tokens: int, fill: int, device) -> BeamState:
        """Only the first beam of each article is live (the others score -1e9), as in transformers."""
        tokens = torch.full((articles, beams, max_new_tokens), fill, dtype=torch.long, device=device)
        scores = torch.zeros((articles, beams), dtype=torch.float, device=device)
        scores[:, 1:] = NEG
        parents = torch.full((articles, beams, max_new_tokens), -1, dtype=torch.int32, device=device)
        return cls(tokens, scores, parents, tokens.clone(), torch.full_like(scores, NEG), parents.clone(),
                   torch.zeros((articles, beams), dtype=torch.bool, device=device),
                   torch.ones((articles, 1), dtype=torch.bool, device=device))

    def select(self, keep: torch.Tensor) -> BeamState:
        """The state of the articles `keep` (indices) only."""
        return BeamState(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


def gather_beams(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor (B, K, ...) gathered along the beam dimension by index (B, M) -> (B, M, ...).

    Example:
        >>> gather_beams(torch.tensor([[10, 11, 12]]), torch.tensor([[2, 0]]))
        tensor([[12, 10]])
    """
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def eos_ids(config) -> list[int]:
    """The config's EOS ids as a list (none, one, or several).

    Example:
        >>> from transformers import GenerationConfig
        >>> eos_ids(GenerationConfig(eos_token_id=2)), eos_ids(GenerationConfig(eos_token_id=[2, 7]))
        ([2], [2, 7])
    """
    eos = config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def beam_step(state: BeamState, log_probs: torch.Tensor, step: int, config, eos: torch.Tensor,
              row_offset: torch.Tensor) -> tuple[BeamState, torch.Tensor, torch.Tensor]:
    """One step of transformers' beam search from this step's log-probabilities, (B * N, V).

    Returns the new state, whether every candidate hit a stop (B, K), and the flat row each new running
    beam continues, (B * N,), for the cache. `step` counts the tokens generated before this one.
    """
    articles, beams, max_new = state.running_tokens.shape
    keep = max(2, 1 + len(eos)) * beams
    vocab = log_probs.shape[-1]
    scores = (log_probs.view(articles, beams, vocab) + state.running_scores[:, :, None]).view(articles, -1)
    top_scores, top_index = torch.topk(scores, k=keep)
    parent = top_index // vocab
    top_tokens = gather_beams(state.running_tokens, parent)
    top_tokens[:, :, step] = top_index % vocab
    top_parents = gather_beams(state.running_parents, parent)
    top_parents[:, :, step] = (parent + row_offset[:, None]).to(top_parents.dtype)
    stops = torch.isin(top_tokens[:, :, step], eos) | (step + 1 >= max_new)

    live_scores = top_scores + stops.to(torch.float32) * NEG
    best_live = torch.topk(live_scores, k=beams)[1]
    running = (gather_beams(top_tokens, best_live), gather_beams(live_scores, best_live),
               gather_beams(top_parents, best_live))
    finished = finish_hypotheses(state, top_tokens, top_scores, top_parents, stops, step, config)
    state = BeamState(*running[:1], running[1], running[2], *finished, state.improvable)
    return state, stops, state.running_parents[:, :, step].reshape(-1).long()


def finish_hypotheses(state: BeamState, top_tokens, top_scores, top_parents, stops, step: int, config):
    """transformers' `_update_finished_beams`: the best N of the finished hypotheses so far and the
    candidates among the top N that just stopped, scored over their length ** length_penalty."""
    beams = state.running_tokens.shape[1]
    top_n = torch.zeros(top_scores.shape[1], dtype=torch.bool, device=top_scores.device)
    top_n[:beams] = True
    just_finished = stops & top_n[None, :]
    scores = top_scores / ((step + 1) ** config.length_penalty)
    full = torch.all(state.is_finished, dim=-1, keepdim=True) & (config.early_stopping is True)
    scores += full.to(torch.float32) * NEG
    scores += (~state.improvable).to(torch.float32) * NEG
    scores += (~just_finished) * NEG
    merged_scores = torch.cat((state.finished_scores, scores), dim=1)
    best = torch.topk(merged_scores, k=beams)[1]
    return (gather_beams(torch.cat((state.finished_tokens, top_tokens), dim=1), best),
            gather_beams(merged_scores, best),
            gather_beams(torch.cat((state.finished_parents, top_parents), dim=1), best),
            gather_beams(torch.cat((state.is_finished, just_finished), dim=1), best))


def still_improvable(state: BeamState, generated: int, config) -> torch.Tensor:
    """transformers' `_check_early_stop_heuristic` after `generated` tokens: (B, 1), False for an article
    whose finished hypotheses no running beam can beat any more (so its result is final)."""
    max_new = state.running_tokens.shape[2]
    length = max_new if config.early_stopping == "never" and config.length_penalty > 0.0 else generated
    best_possible = state.running_scores[:, :1] / (length ** config.length_penalty)
    worst_finished = torch.where(state.is_finished, torch.min(state.finished_scores, dim=1, keepdim=True)[0], NEG)
    return state.improvable & torch.any(best_possible > worst_finished, dim=-1, keepdim=True)


def articles_done(state: BeamState, stops: torch.Tensor, config) -> torch.Tensor:
    """(B,) True for an article whose result can no longer change: transformers' stopping condition, per
    article (it stops the whole batch when every article is done)."""
    all_finished = torch.all(state.is_finished, dim=-1) & (config.early_stopping is True)
    return ~state.improvable[:, 0] | all_finished | torch.all(stops, dim=-1)


def best_tokens(state: BeamState) -> list[list[int]]:
    """The best finished hypothesis of each article, its generated ids up to its length (EOS included)."""
    lengths = (state.finished_parents[:, 0] + 1).bool().sum(dim=1).tolist()
    return [row[:n] for row, n in zip(state.finished_tokens[:, 0].tolist(), lengths)]


# Settings that add logits processors or stopping criteria this search does not apply, with their neutral values.
NEUTRAL = {"do_sample": False, "min_length": 0, "min_new_tokens": None, "repetition_penalty": 1.0,
           "encoder_repetition_penalty": 1.0, "bad_words_ids": None, "forced_bos_token_id": None,
           "forced_eos_token_id": None, "suppress_tokens": None, "begin_suppress_tokens": None,
           "exponential_decay_length_penalty": None, "sequence_bias": None, "stop_strings": None,
           "max_time": None, "num_return_sequences": 1, "renormalize_logits": False,
           "remove_invalid_values": False, "guidance_scale": None, "watermarking_config": None}


def resolved_config(model, config):
    """`config` with its unset values filled as `generate` fills them: from the model's own generation config,
    then transformers' global defaults (a checkpoint's generation_config.json may set a length penalty)."""
    import copy

    config = copy.deepcopy(config)
    config.update(**model.generation_config.to_dict(), defaults_only=True, allow_custom_entries=True)
    config.update(**config._get_default_generation_params(), defaults_only=True)
    return config


def unsupported_settings(config) -> list[str]:
    """The resolved config's settings that this beam search does not apply (then `generate` must run).

    Example:
        >>> from transformers import GenerationConfig
        >>> unsupported_settings(GenerationConfig(num_beams=4, repetition_penalty=1.2, length_penalty=0.8))
        ['repetition_penalty']
    """
    return [name for name, neutral in NEUTRAL.items() if getattr(config, name, neutral) not in (neutral, None)
            or (neutral is None and getattr(config, name, None) not in (None, [], {}))]


@functools.lru_cache(maxsize=None)
def _forward_takes_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def supports_logits_to_keep(model) -> bool:
    """Whether the model's forward can compute the logits of the last position only (as `generate` asks)."""
    return _forward_takes_logits_to_keep(type(model))


def prefill(model, input_ids, inputs_embeds, attention_mask: torch.Tensor, cache, prefix=None):
    """The prompts' forward pass, with the inputs `generate` gives it: position ids counted over the mask
    (0 on padding), the mask dropped when it is all ones, logits of the last position only where the model
    can skip the others. Returns fp32 logits (B, V), the last position ids (B, 1) and the mask (or None).

    `prefix`: prefix tuning's keys and values per layer (`methods.prefix_key_values`), put in the empty cache
    first, each row's after its padding (`kv_cache.seed_prefix`); the mask then covers them too, and the text's
    position ids start at the prefix's length, as in training."""
    if prefix is not None:
        attention_mask = seed_prefix(cache, prefix, attention_mask)
    width = (input_ids if input_ids is not None else inputs_embeds).shape[1]
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)[:, -width:]
    mask = None if bool((attention_mask == 1).all()) else attention_mask  # as generate drops an all-ones mask
    extra = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    out = model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions,
                cache=cache, use_cache=True, return_dict=True, **extra)
    return out.logits[:, -1, :].to(copy=True, dtype=torch.float32), positions[:, -1:], mask


def decode_step(model, tokens: torch.Tensor, positions: torch.Tensor, mask, cache):
    """One token per row, (rows, 1), through the model as `generate` feeds it; returns (fp32 logits (rows, V),
    the new position ids, the extended mask or None)."""
    positions = positions + 1
    mask = None if mask is None else torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
    extra = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    out = model(input_ids=tokens, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                return_dict=True, **extra)
    return out.logits[:, -1, :].to(copy=True, dtype=torch.float32), positions, mask


class BeamCache:
    """The model's KV cache for beam search: prompt states shared by the beams of an article, generated
    states reordered in place. Wraps a `growing_cache`; layers of other kinds are reordered whole."""

    def __init__(self, model_config, max_new_tokens: int):
        self.cache = growing_cache(model_config, reserve=0)
        self.max_new_tokens = max_new_tokens
        self.prompt_length = 0

    def expand(self, prompts: int, beams: int) -> None:
        """After the prefill of `prompts` prompts: each row becomes `beams` rows, room made for the new tokens."""
        device = self.cache.layers[0].keys.device
        rows = torch.arange(prompts, device=device).repeat_interleave(beams)
        select_cache_rows(self.cache, rows, reserve=self.max_new_tokens)
        self.prompt_length = self.cache.get_seq_length()

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues the beam that was row rows[i] (within the same article)."""
        for layer in self.cache.layers:
            if isinstance(layer, GrowingLayer):
                layer.reorder_rows(rows, start=self.prompt_length)
            else:
                layer.reorder_cache(rows)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Only the rows `rows` stay (the beams of the articles still running)."""
        select_cache_rows(self.cache, rows, reserve=self.max_new_tokens)


@torch.no_grad()
def beam_search(model, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, config,
                inputs_embeds: torch.Tensor | None = None, prefix=None) -> list[list[int]]:
    """New token ids of the best beam per left-padded prompt, EOS and after removed.

    Args:
        model: a transformers causal LM (not a PEFT wrapper: pass `get_base_model()`, which runs injected
            adapters; a soft prompt comes in through `inputs_embeds`).
        input_ids: (B, L) left-padded prompt ids, or None with `inputs_embeds` (B, L, hidden).
        attention_mask: (B, L), 0 over the left padding.
        config: a GenerationConfig: num_beams, max_new_tokens, eos/pad ids, length_penalty, early_stopping,
            no_repeat_ngram_size (blocked within the summary only).
        prefix: prefix tuning's keys and values per layer, each (B, heads, P, head_dim), or None (`prefill`).
    Returns:
        B lists of new token ids, as `cut_at_eos(generate(...)[:, L:])` gives them.
    """
    from .generate import NoRepeatNGramInSummary, cut_at_eos  # generate.py imports this module

    config = resolved_config(model, config)
    if unsupported_settings(config):
        raise ValueError(f"beam_search does not apply {', '.join(unsupported_settings(config))}: use generate")
    beams, max_new = config.num_beams, config.max_new_tokens
    eos_list = eos_ids(config)
    device = attention_mask.device
    eos = torch.tensor(eos_list, dtype=torch.long, device=device)
    articles = attention_mask.shape[0]
    blocking = NoRepeatNGramInSummary(config.no_repeat_ngram_size, start=0) if config.no_repeat_ngram_size else None
    fill = config.pad_token_id if config.pad_token_id is not None else (eos_list[0] if eos_list else -1)

    cache = BeamCache(model.config, max_new)
    logits, positions, mask = prefill(model, input_ids, inputs_embeds, attention_mask, cache.cache, prefix)
    logits = logits.repeat_interleave(beams, dim=0)
    cache.expand(articles, beams)
    positions = positions.repeat_interleave(beams, dim=0)
    mask = None if mask is None else mask.repeat_interleave(beams, dim=0)

    state = BeamState.start(articles, beams, max_new, fill, device)
    article_ids = torch.arange(articles, device=device)  # which prompt each remaining article is
    results: dict[int, list[int]] = {}
    for step in range(max_new):
        if step:
            tokens = state.running_tokens[:, :, step - 1].reshape(-1, 1)
            logits, positions, mask = decode_step(model, tokens, positions, mask, cache.cache)
        log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
        if blocking is not None and step:
            log_probs = blocking(state.running_tokens[:, :, :step].reshape(log_probs.shape[0], step), log_probs)
        row_offset = torch.arange(state.running_tokens.shape[0], device=device) * beams
        state, stops, rows = beam_step(state, log_probs, step, config, eos, row_offset)
        cache.reorder(rows)
        state.improvable = still_improvable(state, step + 1, config)
        done = articles_done(state, stops, config)
        if bool(done.all()):
            results.update(zip(article_ids.tolist(), best_tokens(state)))
            break
        if bool(done.any()):
            results.update(zip(article_ids[done].tolist(), best_tokens(state.select(done))))
            keep = (~done).nonzero().squeeze(-1)
            keep_rows = (keep[:, None] * beams + torch.arange(beams, device=device)).reshape(-1)
            state, article_ids = state.select(keep), article_ids[keep]
            cache.keep_rows(keep_rows)
            positions = positions[keep_rows]
            mask = None if mask is None else mask[keep_rows]
    return [cut_at_eos(results[i], eos_list) for i in range(articles)]
