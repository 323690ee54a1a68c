"""Cut-then-tokenize (common/data/encoding.py) gives the ids of tokenizing whole texts: on hand-written edge cases
and on every row of the shared CNN/DailyMail files, with the tiny tokenizer and, when prepared, SmolLM2's; and
training examples built from cut texts are the table the whole-text preparation built."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from common.config.arguments import DataArguments
from common.data.encoding import CHARS_PER_TOKEN, MARGIN_TOKENS, cut_at_whitespace, encode_heads, encode_texts
from common.data.prompts import build_prompt_ids, make_prompt_parts, mask_prompt, tokenize_for_training
from helpers import FIXTURES, ROOT

SHARED = ROOT.parent / "shared" / "data" / "cnn_dailymail"
SPLITS = ("train", "validation", "test")
LIMITS = (512, 64)  # the default --max_source_length and a small one


def whole_heads(tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    return [ids[:limit] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def edge_cases(limit: int) -> dict[str, str]:
    budget = int(CHARS_PER_TOKEN * (limit + MARGIN_TOKENS))
    word = "council "
    return {
        "shorter than the limit": "Rain fell on Paris.",
        "at the budget": (word * budget)[:budget],
        "one past the budget": (word * budget)[: budget + 1],
        "space at the budget": "x" * (budget - 1) + " tail" * 50,
        "emoji run, no whitespace": "\U0001f600" * (3 * budget),
        "emoji words": "\U0001f600\U0001f389 " * budget,
        "words, then one long emoji run": word * 2 + "\U0001f600" * (3 * budget),
        "CJK words": "\u6c49\u5b57\u6587\u672c " * budget,
        "accents and combining marks": "caf\u00e9 cafe\u0301 na\u00efve " * budget,
        "no whitespace": "a" * (3 * budget),
        "long whitespace runs": ("word" + " " * 300 + "next\n\n\n\t ") * budget,
        "whitespace run at the cut": word * (budget // 16) + " " * budget + word * budget,
        "non-breaking and other spaces": "one\u00a0two\u2009three\u3000four " * budget,
        "newlines only": "line\n" * budget,
    }


@pytest.mark.parametrize("limit", [0, 1, 8, 40])
def test_heads_equal_whole_text_ids_on_edge_cases(tiny_tokenizer, limit):
    cases = edge_cases(limit)
    heads = encode_heads(tiny_tokenizer, list(cases.values()), limit)
    for (name, text), ids, expected in zip(cases.items(), heads, whole_heads(tiny_tokenizer, cases.values(), limit)):
        assert ids == expected, name


def test_edge_cases_take_every_path(tiny_tokenizer):
    """The edge cases reach each branch: text kept whole, cut and trusted, cut and tokenized again whole."""
    limit = 8
    wanted = limit + MARGIN_TOKENS
    budget = int(CHARS_PER_TOKEN * wanted)
    cases = edge_cases(limit)
    heads = {name: cut_at_whitespace(text, budget) for name, text in cases.items()}
    assert heads["shorter than the limit"] is cases["shorter than the limit"]
    assert heads["at the budget"] is cases["at the budget"] and heads["no whitespace"] is cases["no whitespace"]
    assert len(encode_texts(tiny_tokenizer, [heads["one past the budget"]])[0]) > wanted  # cut, trusted
    assert heads["space at the budget"] == "x" * (budget - 1)
    run_head = heads["words, then one long emoji run"]
    assert run_head == "council council" and len(encode_texts(tiny_tokenizer, [run_head])[0]) <= wanted


def test_cut_ends_on_a_word_of_the_whole_text():
    assert cut_at_whitespace("one two  three four", 10) == "one two"
    assert cut_at_whitespace("one two three", 8) == "one two"  # the space at the budget itself
    assert cut_at_whitespace("one\ntwo three", 6) == "one\ntwo three"  # only spaces are cut at...
    assert cut_at_whitespace("one\n two three", 5) == "one"  # ...and whitespace before them is dropped
    assert cut_at_whitespace("   lead", 2) == "   lead"  # nothing before the space: not cut


def test_encode_texts_sets_the_backend_as_the_call_does(tiny_tokenizer):
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    text = "The council approved the new budget on Tuesday after a long debate."
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    tokenizer.backend_tokenizer.enable_truncation(4)  # the fast path would truncate: the call is used instead
    assert encode_texts(tokenizer, [text]) == [whole] and len(whole) > 4
    assert encode_texts(tokenizer, []) == []


def shared_rows() -> list[dict]:
    rows = []
    for split in SPLITS:
        with open(SHARED / f"{split}.jsonl", encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def offline_tokenizer():
    from transformers import AutoTokenizer

    from common.models.offline import default_cache_dir

    folder = default_cache_dir()
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"no SmolLM2 tokenizer in {folder} (python -m common.offline_model)")
    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.skipif(not all((SHARED / f"{split}.jsonl").is_file() for split in SPLITS),
                    reason=f"no CNN/DailyMail files in {SHARED}")
@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_heads_equal_whole_text_ids_on_every_shared_row(tiny_tokenizer, which):
    tokenizer = tiny_tokenizer if which == "tiny" else offline_tokenizer()
    rows = shared_rows()
    assert len(rows) == 2358  # train 100 + validation 1758 + test 500
    for column, limits in (("article", LIMITS), ("highlights", (127,))):  # 127: the summary of --max_target_length
        texts = [row[column] for row in rows]
        whole = tokenizer(texts, add_special_tokens=False)["input_ids"]
        for limit in limits:
            cut = sum(len(cut_at_whitespace(text, int(CHARS_PER_TOKEN * (limit + MARGIN_TOKENS)))) < len(text)
                      for text in texts)
            assert encode_heads(tokenizer, texts, limit) == [ids[:limit] for ids in whole], (column, limit)
            if column == "article":
                assert cut > len(rows) // 2  # most articles were cut, so the equality is the cut's


def whole_text_examples(dataset, tokenizer, data_args: DataArguments):
    """The preparation before cutting: whole texts tokenized, examples as lists converted by `datasets`."""
    parts = make_prompt_parts(tokenizer, data_args)

    def encode_batch(batch):
        articles = tokenizer(batch["article"], add_special_tokens=False)["input_ids"]
        summaries = tokenizer(batch["summary"], add_special_tokens=False)["input_ids"]
        examples = [mask_prompt(build_prompt_ids(a, parts, data_args.max_source_length), s, tokenizer.eos_token_id,
                                data_args.max_target_length) for a, s in zip(articles, summaries)]
        return {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples],
                "length": [len(e["input_ids"]) for e in examples]}

    return dataset.map(encode_batch, batched=True, remove_columns=dataset.column_names)


@pytest.mark.parametrize("max_source_length, max_target_length", [(512, 128), (24, 6)])
def test_training_examples_equal_the_whole_text_preparation(tiny_tokenizer, max_source_length, max_target_length):
    folder = SHARED if (SHARED / "test.jsonl").is_file() else FIXTURES
    with open(folder / "test.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    dataset = Dataset.from_dict({"id": [r["id"] for r in rows], "article": [r["article"] for r in rows],
                                 "summary": [r["highlights"] for r in rows]})
    data_args = DataArguments(max_source_length=max_source_length, max_target_length=max_target_length)
    ours, before = (prepare(dataset, tiny_tokenizer, data_args)
                    for prepare in (tokenize_for_training, whole_text_examples))
    assert ours.features == before.features and len(ours) == len(rows)
    assert ours.data.table.equals(before.data.table)
