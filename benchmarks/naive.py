"""The naive baseline the benchmark compares against: what a first implementation of the same training and
generation does, on the same model, examples and prompts as ours.

Training: every example is padded to the longest one the settings allow (template + max_source_length +
max_target_length tokens), the loss is `model(**batch, labels=labels).loss` (full-vocabulary logits at every
position, padding included), then gradient clipping and an AdamW step. Generation: one `generate` call per
prompt, unpadded, with transformers' default (concatenating) KV cache.

Only the naive parts live here. What both paths share so that they differ in nothing else (the examples,
their label masks, the optimizer settings, the autocast dtype, the greedy decoding settings) comes from the
project, and the harness (`benchmarks/benchmark.py`) runs ours under the same `autocast` and `clip_and_step`.
"""

from __future__ import annotations

import contextlib

import torch

from common.generation.generate import generate_token_batch, generation_config
from common.data.prompts import PaddingCollator, make_prompt_parts


def naive_length(tokenizer, data_args) -> int:
    """The longest example the settings allow: template + max_source_length + max_target_length."""
    parts = make_prompt_parts(tokenizer, data_args)
    return len(parts.prefix_ids) + data_args.max_source_length + len(parts.suffix_ids) + data_args.max_target_length


def naive_batch(batch: dict, pad_id: int, length: int) -> dict:
    """The same rows right-padded to `length` (input_ids with `pad_id`, labels with -100), as a first
    implementation's fixed-length padding does."""
    rows = [{"input_ids": ids[: n].tolist(), "labels": labels[: n].tolist()}
            for ids, labels, n in zip(batch["input_ids"], batch["labels"], batch["attention_mask"].sum(1))]
    padded = PaddingCollator(pad_id=pad_id, pad_to_multiple_of=length)(rows)
    return {k: v.to(batch["input_ids"].device) for k, v in padded.items()}


def naive_stepper(model, params, training_args):
    """A training step function: loss from the model's own head over every position, backward, AdamW step."""
    optimizer = torch.optim.AdamW(params, lr=training_args.learning_rate)

    def step(batch) -> None:
        model.train()
        with autocast(training_args):
            loss = model(**batch).loss  # the batch holds labels: logits over the full vocabulary everywhere
        loss.backward()
        clip_and_step(optimizer, params, training_args.max_grad_norm)

    return step


def naive_generate(model, tokenizer, prompts, gen_args) -> list[list[int]]:
    """New tokens for each prompt, one prompt per generate call (no padding, no batching, transformers'
    default concatenating KV cache): what a first loop over the test set does. It goes through the project's
    `generate_token_batch` only so that a soft prompt is placed as ours places it; with one unpadded row and
    `in_place_cache=False` that is a plain `model.generate`."""
    config = generation_config(gen_args, tokenizer)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        rows = []
        for prompt in prompts:
            ids = torch.tensor([prompt], device=device)
            rows.extend(generate_token_batch(model, ids, torch.ones_like(ids), config, in_place_cache=False))
    return rows


def clip_and_step(optimizer, params, max_grad_norm) -> None:
    """Clip the gradients' total norm (when set), take the optimizer step, drop the gradients. Both paths."""
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def autocast(training_args):
    """bf16/fp16 autocast on a GPU, as the Trainer's accelerator applies it; nothing in fp32. Both paths."""
    if training_args.bf16 or training_args.fp16:
        dtype = torch.bfloat16 if training_args.bf16 else torch.float16
        return torch.autocast(training_args.device.type, dtype=dtype)
    return contextlib.nullcontext()
