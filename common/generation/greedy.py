"""Greedy decoding on the in-place KV cache, with finished rows leaving the batch: the tokens of
`transformers.generate(num_beams=1, do_sample=False)`, without its per-step bookkeeping.

A decoding step is memory-bound: it reads every weight and every row's cached keys and values
(`benchmarks/generation_speed.py` measures it against the machine's read bandwidth). `generate` adds
work around each step (input preparation, mask and stopping-criteria bookkeeping, a finished row kept
in the batch and fed padding until the last row ends). Here each step is one forward pass on the rows
still running, the token is the argmax of the processed fp32 logits as in `generate`, and a row that
produced EOS leaves the batch (its cache rows are compacted in place).

Example (the tests' tiny random GPT-Neo; two left-padded prompts):
    >>> from transformers import GenerationConfig
    >>> from common.models.tiny import build_tiny_model, build_tokenizer
    >>> model = build_tiny_model(len(build_tokenizer())).eval()
    >>> ids = torch.tensor([[0, 0, 11, 12, 13], [21, 22, 23, 24, 25]])
    >>> mask = (torch.arange(5) >= torch.tensor([[2], [0]])).long()
    >>> config = GenerationConfig(max_new_tokens=6, do_sample=False, eos_token_id=0, pad_token_id=0)
    >>> with torch.no_grad():
    ...     ours = greedy_search(model, ids, mask, config)
    ...     stock = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, 5:].tolist()
    >>> ours == [row[:row.index(0)] if 0 in row else row for row in stock]
    True
"""

from __future__ import annotations

import torch

from .beam_search import decode_step, eos_ids, prefill, resolved_config, unsupported_settings
from .kv_cache import growing_cache, select_cache_rows


@torch.no_grad()
def greedy_search(model, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, config,
                  inputs_embeds: torch.Tensor | None = None, prefix=None) -> list[list[int]]:
    """New token ids per left-padded prompt, EOS and after removed (as `beam_search.beam_search` takes them).

    input_ids (B, L) or inputs_embeds (B, L, hidden); attention_mask (B, L); config: max_new_tokens, eos and
    pad ids, no_repeat_ngram_size (within the summary only); prefix: prefix tuning's keys and values per layer,
    or None (`beam_search.prefill`). Returns B lists of ids.
    """
    from .generate import NoRepeatNGramInSummary  # generate.py imports this module

    config = resolved_config(model, config)
    if unsupported_settings(config):
        raise ValueError(f"greedy_search does not apply {', '.join(unsupported_settings(config))}: use generate")
    max_new, eos = config.max_new_tokens, set(eos_ids(config))
    blocking = NoRepeatNGramInSummary(config.no_repeat_ngram_size, start=0) if config.no_repeat_ngram_size else None
    cache = growing_cache(model.config, reserve=max_new)
    logits, positions, mask = prefill(model, input_ids, inputs_embeds, attention_mask, cache, prefix)
    rows = list(range(attention_mask.shape[0]))  # the prompt each running row is
    generated: list[list[int]] = [[] for _ in rows]
    for step in range(max_new):
        if step:
            tokens = torch.tensor([[generated[row][-1]] for row in rows], device=attention_mask.device)
            logits, positions, mask = decode_step(model, tokens, positions, mask, cache)
        if blocking is not None and step:
            logits = blocking(torch.tensor([generated[row] for row in rows], device=logits.device), logits)
        for row, token in zip(rows, logits.argmax(dim=-1).tolist()):
            generated[row].append(token)
        running = [i for i, row in enumerate(rows) if generated[row][-1] not in eos]
        if not running:
            break
        if len(running) < len(rows):
            keep = torch.tensor(running, device=attention_mask.device)
            select_cache_rows(cache, keep, reserve=max_new - step)
            rows, positions = [rows[i] for i in running], positions[keep]
            mask = None if mask is None else mask[keep]
    return [tokens[:-1] if tokens and tokens[-1] in eos else tokens for tokens in generated]
