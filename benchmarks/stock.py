"""The stock Hugging Face baseline: the same training and generation written the way transformers'
summarization example and PEFT's examples write them, on the same model, examples and prompts as ours.

Training: the standard `transformers.Trainer` (not our SummarizationTrainer) with random sampling and
`DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)`, which pads each batch to its longest row
(input_ids with the tokenizer's pad id, labels with -100, the attention mask from the tokenizer). The loss
is the model's own `model(**batch).loss`, full-vocabulary logits at every position. The examples are ours
(`tokenize_for_training`: labels -100 over the prompt, ids over the summary and its EOS), so the loss is the
same quantity; with GPT-Neo pad == EOS, and this collator pads labels on their own, so the summary's EOS
stays a label. The optimizer is the Trainer's own AdamW from the same TrainingArguments.

Generation: `model.generate` on left-padded batches of prompts in input order (not length-sorted), greedy,
transformers' default cache. A soft prompt is the exception: PEFT's own prompt-tuning `generate` is wrong on
transformers 5.x (see common/generation/generate.py), so it goes through ours' embeddings path
(`generate_token_batch` with transformers' default cache), and the output says "ours for soft prompt".

The harness (`benchmarks/benchmark.py`) draws the examples from ours' dataloader and hands each group of
them (warm-up steps, timed steps) to this Trainer's random sampler, so that all paths see the same examples.
"""

from __future__ import annotations

import dataclasses

import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Trainer

from common.models.fast_kernels import eager_kernels
from common.generation.generate import cut_at_eos, generate_token_batch, generation_config, summary_ngram_blocking
from common.methods import num_virtual_tokens
from common.methods.prefix_tuning import is_prefix_tuning_model
from common.data.prompts import IGNORE_INDEX


def stock_trainer(training_args, model, tokenizer) -> Trainer:
    """The standard Trainer on `model` with the same arguments as ours, but random sampling, the usual
    column removal and the seq2seq example's collator (multiple-of-8 padding under fp16, as there)."""
    args = dataclasses.replace(training_args, train_sampling_strategy="random", remove_unused_columns=True)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX,
                                      pad_to_multiple_of=8 if args.fp16 else None)
    return Trainer(model=model, args=args, data_collator=collator, processing_class=tokenizer)


def unpadded_rows(batch: dict) -> list[dict]:
    """The examples of a right-padded batch, as the tokenized dataset holds them (input_ids, labels)."""
    return [{"input_ids": ids[:n].tolist(), "labels": labels[:n].tolist()}
            for ids, labels, n in zip(batch["input_ids"].cpu(), batch["labels"].cpu(), batch["attention_mask"].sum(1))]


def stock_collate(trainer: Trainer, batch: dict) -> dict:
    """The same examples as `batch`, padded by the stock collator, on the batch's device."""
    padded = trainer.data_collator(unpadded_rows(batch))
    return {key: padded[key].to(batch["input_ids"].device) for key in ("input_ids", "attention_mask", "labels")}


def stock_batches(trainer: Trainer, batches: list[dict], warmup: int) -> list[dict]:
    """Batches from the stock Trainer's own dataloader (random sampler, stock collator) over the examples of
    ours' `batches`, the warm-up ones and the timed ones apart, so that each group holds the same examples
    (and tokens) in both paths, only grouped into batches at random. Sets `trainer.train_dataset`."""
    drawn = []
    for group in (batches[:warmup], batches[warmup:]):
        if not group:
            continue
        rows = [row for batch in group for row in unpadded_rows(batch)]
        trainer.train_dataset = Dataset.from_list(rows)
        drawn.extend(trainer.get_train_dataloader())
    device = batches[0]["input_ids"].device
    return [{k: v.to(device) for k, v in batch.items()} for batch in drawn]


def probe_losses(ours_trainer, trainer: Trainer, model, batch: dict) -> dict:
    """Ours' and the stock loss on the same examples with the same weights, before any step: dropout off, fp32,
    each through its Trainer's compute_loss (ours: label_position_loss and the fused kernels; stock:
    model(**batch).loss and the model's own classes)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ours = float(ours_trainer.compute_loss(model, batch))
            with eager_kernels(model):
                stock = float(trainer.compute_loss(model, stock_collate(trainer, batch)))
    finally:
        model.train(was_training)
    return {"ours": ours, "stock": stock, "max_abs_difference": abs(ours - stock)}


def stock_generate(model, tokenizer, prompts: list[list[int]], gen_args) -> list[list[int]]:
    """New tokens per prompt (EOS and after removed): batches of `generation_batch_size` prompts in input
    order, left-padded by the tokenizer, one `model.generate` each with transformers' default cache (greedy
    or beams as `gen_args` says; repeated n-grams blocked within the summary, as ours blocks them)."""
    config = generation_config(gen_args, tokenizer)
    device = next(model.parameters()).device
    size = gen_args.generation_batch_size
    model.eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(prompts), size):
            batch = tokenizer.pad({"input_ids": prompts[start:start + size]}, padding_side="left",
                                  return_tensors="pt").to(device)
            if num_virtual_tokens(model) or is_prefix_tuning_model(model):  # PEFT's generate is wrong for both
                # on transformers 5.x: ours' embeddings path / our cache holding the prefix, with stock generate
                rows.extend(generate_token_batch(model, batch["input_ids"], batch["attention_mask"], config,
                                                 in_place_cache=False))
                continue
            config_, processors = summary_ngram_blocking(config, start=batch["input_ids"].shape[1])
            output = model.generate(**batch, generation_config=config_, logits_processor=processors)
            new = output[:, batch["input_ids"].shape[1]:].tolist()
            rows.extend(cut_at_eos(row, config.eos_token_id) for row in new)
    return rows


def generation_path(model) -> str:
    """What the stock generation ran, for the report."""
    if num_virtual_tokens(model):
        return "stock (ours for soft prompt)"
    return "stock (ours for prefix tuning)" if is_prefix_tuning_model(model) else "stock"
