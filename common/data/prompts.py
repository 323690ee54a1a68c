"""Prompt building, prompt masking and the padding collator.

A training example is `prefix + article[:max_source_length] + suffix` (the prompt) followed by
`summary[:max_target_length - 1] + EOS`. Labels are -100 over the prompt and the real ids over the
summary and its EOS. The mask is built here, once per example; the collator only pads. Articles and
summaries are tokenized only about as far as they are kept (`data.encoding.encode_heads`, exact ids).

Example (hand-written ids, eos = 0):
    >>> parts = PromptParts(prefix_ids=[7], suffix_ids=[8, 9])
    >>> prompt = build_prompt_ids([11, 12, 13], parts, max_source_length=2)
    >>> prompt
    [7, 11, 12, 8, 9]
    >>> mask_prompt(prompt, [21, 22, 23], eos_id=0, max_target_length=3)
    {'input_ids': [7, 11, 12, 8, 9, 21, 22, 0], 'labels': [-100, -100, -100, -100, -100, 21, 22, 0]}
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import torch

from ..config.arguments import DataArguments
from .encoding import encode_heads

IGNORE_INDEX = -100
ARTICLE_SENTINEL = "\u2063ARTICLE\u2063"
# The columns `tokenize_for_training` writes, typed as `datasets` types them from lists (ids int32, labels int64).
EXAMPLE_SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int64())),
                            ("length", pa.int64())])


@dataclass(frozen=True)
class PromptParts:
    """Token ids of the template text before and after the article."""

    prefix_ids: list[int]
    suffix_ids: list[int]


def prompt_strings(tokenizer, data_args: DataArguments) -> tuple[str, str]:
    """The template text before and after the article, rendered through the chat template if asked."""
    template = data_args.prompt_template
    if data_args.use_chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("--use_chat_template is set but the tokenizer has no chat template; "
                             "leave the flag out or use an instruction-tuned model's tokenizer")
        messages = [{"role": "user", "content": template.replace("{article}", ARTICLE_SENTINEL)}]
        template = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prefix, _, suffix = template.partition(ARTICLE_SENTINEL)
        return prefix, suffix
    prefix, _, suffix = template.partition("{article}")
    return prefix, suffix


def make_prompt_parts(tokenizer, data_args: DataArguments) -> PromptParts:
    """Tokenize the template pieces once; every example reuses them."""
    prefix, suffix = prompt_strings(tokenizer, data_args)
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"] if text else []  # noqa: E731
    prefix_ids = encode(prefix)
    if data_args.use_chat_template is False and tokenizer.bos_token_id is not None and _adds_bos(tokenizer):
        prefix_ids = [tokenizer.bos_token_id] + prefix_ids
    return PromptParts(prefix_ids=prefix_ids, suffix_ids=encode(suffix))


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def build_prompt_ids(article_ids: list[int], parts: PromptParts, max_source_length: int) -> list[int]:
    """`prefix + article[:max_source_length] + suffix`: only the article is ever truncated."""
    return parts.prefix_ids + article_ids[:max_source_length] + parts.suffix_ids


def mask_prompt(prompt_ids: list[int], summary_ids: list[int], eos_id: int, max_target_length: int) -> dict:
    """Concatenate prompt and summary; labels are -100 over the prompt, ids over summary + EOS.

    The summary is cut to `max_target_length - 1` tokens so that it always ends with EOS.
    """
    target = summary_ids[: max(max_target_length - 1, 0)] + [eos_id]
    return {"input_ids": prompt_ids + target, "labels": [IGNORE_INDEX] * len(prompt_ids) + target}


def build_prompts(tokenizer, articles: list[str], data_args: DataArguments) -> list[list[int]]:
    """Generation prompts, token ids, one per article."""
    parts = make_prompt_parts(tokenizer, data_args)
    return [build_prompt_ids(ids, parts, data_args.max_source_length)
            for ids in encode_heads(tokenizer, articles, data_args.max_source_length)]


def tokenize_for_training(dataset, tokenizer, data_args: DataArguments):
    """Map a split with `article`/`summary` to `input_ids`, `labels` and `length` (prompt masked)."""
    parts, eos_id = make_prompt_parts(tokenizer, data_args), tokenizer.eos_token_id

    def encode_batch(batch):
        articles = encode_heads(tokenizer, batch["article"], data_args.max_source_length)
        summaries = encode_heads(tokenizer, batch["summary"], max(data_args.max_target_length - 1, 0))
        return examples_table([mask_prompt(build_prompt_ids(a, parts, data_args.max_source_length), s, eos_id,
                                           data_args.max_target_length) for a, s in zip(articles, summaries)])

    return dataset.map(encode_batch, batched=True, remove_columns=dataset.column_names, desc="Tokenizing")


def examples_table(examples: list[dict]) -> pa.Table:
    """Examples from `mask_prompt` as an Arrow table of EXAMPLE_SCHEMA, with each one's `length`.

    Built here rather than by `datasets` from lists, which first checks the type of every id (a fifth of the
    time the preparation took before); the table is the one it would build (tests/test_encoding.py).

    Example:
        >>> examples_table([{"input_ids": [7, 21, 0], "labels": [-100, 21, 0]}]).to_pylist()
        [{'input_ids': [7, 21, 0], 'labels': [-100, 21, 0], 'length': 3}]
    """
    ids = [example["input_ids"] for example in examples]
    return pa.table([ids, [example["labels"] for example in examples], [len(row) for row in ids]],
                    schema=EXAMPLE_SCHEMA)


@dataclass(frozen=True)
class PaddingCollator:
    """Right-pads `input_ids` with `pad_id` and `labels` with -100; builds the attention mask.

    It never changes a label, so a summary's EOS stays a label even when pad_id == eos_id.

    Args:
        pad_id: the id written into padded `input_ids` positions.
        pad_to_multiple_of: round the padded length up to a multiple of this (None: longest row).
    Returns:
        dict of LongTensors `input_ids`, `attention_mask`, `labels`, each (batch, padded_length).
    Example:
        >>> batch = PaddingCollator(pad_id=-8)([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
        ...                                     {"input_ids": [4], "labels": [4]}])
        >>> {name: (tensor.dtype, tensor.tolist()) for name, tensor in batch.items()}
        {'input_ids': (torch.int64, [[1, 2, 3], [4, -8, -8]]), 'attention_mask': (torch.int64, [[1, 1, 1], [1, 0, 0]]),
         'labels': (torch.int64, [[-100, 2, 3], [4, -100, -100]])}
    """

    pad_id: int
    pad_to_multiple_of: int | None = None
    label_pad_id: int = IGNORE_INDEX

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids, attention_mask, labels = [], [], []
        for feature in features:
            padding = longest - len(feature["input_ids"])
            input_ids.append(list(feature["input_ids"]) + [self.pad_id] * padding)
            attention_mask.append([1] * len(feature["input_ids"]) + [0] * padding)
            labels.append(list(feature["labels"]) + [self.label_pad_id] * padding)
        return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(attention_mask),
                "labels": torch.tensor(labels)}


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts for generation: returns `input_ids` and `attention_mask`, both (batch, longest).

    Example:
        >>> left_pad([[5, 6], [7]], pad_id=0)
        (tensor([[5, 6], [0, 7]]), tensor([[1, 1], [0, 1]]))
    """
    longest = max(len(p) for p in prompts)
    ids = [[pad_id] * (longest - len(p)) + list(p) for p in prompts]
    mask = [[0] * (longest - len(p)) + [1] * len(p) for p in prompts]
    return torch.tensor(ids), torch.tensor(mask)
