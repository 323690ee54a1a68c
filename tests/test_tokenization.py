"""Prompt masking and padding on hand-written token lists and the tiny tokenizer."""

import torch
from torch.testing import assert_close

from common.config.arguments import DataArguments
from common.data.prompts import (IGNORE_INDEX, PaddingCollator, PromptParts, build_prompt_ids, left_pad,
                                 make_prompt_parts, mask_prompt, prompt_strings, tokenize_for_training)
from datasets import Dataset

PAD, IGNORE = -8, -9


def test_prompt_ids_truncate_only_the_article():
    parts = PromptParts(prefix_ids=[7, 70], suffix_ids=[8, 9])
    assert build_prompt_ids([11, 12, 13, 14], parts, max_source_length=2) == [7, 70, 11, 12, 8, 9]
    assert build_prompt_ids([11], parts, max_source_length=5) == [7, 70, 11, 8, 9]


def test_mask_prompt_labels_summary_and_eos_only():
    example = mask_prompt([7, 11, 12, 8], [21, 22], eos_id=0, max_target_length=10)
    assert example == {"input_ids": [7, 11, 12, 8, 21, 22, 0], "labels": [-100, -100, -100, -100, 21, 22, 0]}


def test_mask_prompt_cuts_summary_but_keeps_eos():
    example = mask_prompt([5], [21, 22, 23, 24], eos_id=2, max_target_length=3)
    assert example == {"input_ids": [5, 21, 22, 2], "labels": [-100, 21, 22, 2]}


def test_collator_pads_ids_and_labels_with_distinct_values():
    collate = PaddingCollator(pad_id=PAD, label_pad_id=IGNORE)
    batch = collate([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4], "labels": [4]}])
    assert_close(batch["input_ids"], torch.tensor([[1, 2, 3], [4, PAD, PAD]]))
    assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert_close(batch["labels"], torch.tensor([[-100, 2, 3], [4, IGNORE, IGNORE]]))


def test_collator_keeps_eos_label_when_pad_equals_eos():
    eos = 0
    batch = PaddingCollator(pad_id=eos)([{"input_ids": [5, 6, eos], "labels": [-100, 6, eos]},
                                         {"input_ids": [5, eos], "labels": [-100, eos]}])
    assert_close(batch["input_ids"], torch.tensor([[5, 6, eos], [5, eos, eos]]))
    assert_close(batch["labels"], torch.tensor([[-100, 6, eos], [-100, eos, IGNORE_INDEX]]))
    assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0]]))


def test_collator_rounds_to_multiple():
    batch = PaddingCollator(pad_id=PAD, pad_to_multiple_of=4)([{"input_ids": [1, 2, 3, 4, 5], "labels": [1] * 5}])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, PAD, PAD, PAD]]


def test_left_pad():
    ids, mask = left_pad([[5, 6], [7]], pad_id=PAD)
    assert_close(ids, torch.tensor([[5, 6], [PAD, 7]]))
    assert_close(mask, torch.tensor([[1, 1], [0, 1]]))


def test_tokenize_for_training_masks_prompt_and_truncates_article(tiny_tokenizer):
    data_args = DataArguments(prompt_template="A: {article}\nS:\n", max_source_length=4, max_target_length=64)
    article, summary = "one two three four five six seven eight", "Short summary."
    dataset = Dataset.from_dict({"id": ["x"], "article": [article], "summary": [summary]})
    row = tokenize_for_training(dataset, tiny_tokenizer, data_args)[0]
    encode = lambda text: tiny_tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = encode("A: ") + encode(article)[:4] + encode("\nS:\n")
    target = encode(summary) + [tiny_tokenizer.eos_token_id]
    assert row["input_ids"] == prompt + target
    assert row["labels"] == [IGNORE_INDEX] * len(prompt) + target
    assert row["length"] == len(prompt) + len(target)


def test_chat_template_wraps_the_article(tiny_tokenizer):
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    data_args = DataArguments(prompt_template="Sum up: {article}", use_chat_template=True)
    assert prompt_strings(tokenizer, data_args) == ("<user>Sum up: ", "</s><assistant>")
    parts = make_prompt_parts(tokenizer, data_args)
    assert parts.suffix_ids == tokenizer("</s><assistant>", add_special_tokens=False)["input_ids"]
