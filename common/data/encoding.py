"""Token ids of the heads of texts: a prompt keeps an article's first `max_source_length` tokens, so only about
that much of the article is tokenized.

Tokenizing costs time in proportion to the text read, and a CNN/DailyMail article runs to ~850 SmolLM2 tokens
where a prompt keeps 512. Each text is therefore cut before tokenizing (`cut_at_whitespace`): at the last space
before a budget of CHARS_PER_TOKEN characters per id wanted, trailing whitespace dropped, so that the cut text
ends where a word of the whole text ends. A cut can change only the ids at its end (the word before it; none
with the byte-level pre-tokenizers of GPT-2, GPT-Neo and SmolLM2, which never join a word to the whitespace
after it), so when the cut text gives more than `limit + MARGIN_TOKENS` ids, its first `limit` are those of the
whole text. A cut text that gives fewer (its tokens span more characters than the budget allows for) is
tokenized again whole, so the ids are always those of `tokenizer(text)[:limit]`. tests/test_encoding.py checks
that on hand-written edge cases and on every row of the shared CNN/DailyMail files, and
`benchmarks/data_scaling.py --compare` on every row of a synthesized 287,113-row training set.

Example (the tests' tiny tokenizer):
    >>> from common.models.tiny import build_tokenizer
    >>> tokenizer = build_tokenizer()
    >>> long, short = "The council approved the budget on Tuesday. " * 100, "Rain fell."
    >>> heads = encode_heads(tokenizer, [long, short], limit=40)
    >>> [len(ids) for ids in heads]
    [40, 7]
    >>> heads == [tokenizer(text, add_special_tokens=False)["input_ids"][:40] for text in (long, short)]
    True
"""

from __future__ import annotations

# Characters allowed per id wanted: byte-level BPE vocabularies of 32k-50k ids average 4-5 characters per English
# token. SmolLM2 over the first 528 tokens of the shared CNN/DailyMail articles: 4.5 on average, 5.2 at the 99th
# percentile, one article of 1,670 above 5.5 (tokenized again whole). A larger budget tokenizes more text.
CHARS_PER_TOKEN = 5.5
MARGIN_TOKENS = 16  # ids a cut text must give past the limit before its first `limit` ids are trusted


def cut_at_whitespace(text: str, budget: int) -> str:
    """`text` up to its last space at or before character `budget`, without trailing whitespace; the whole
    text when it is no longer than `budget` or has no space there to cut at.

    Example:
        >>> cut_at_whitespace("one two  three four", 10)
        'one two'
        >>> cut_at_whitespace("one two", 10), cut_at_whitespace("unbroken-text", 5), cut_at_whitespace(" lead", 3)
        ('one two', 'unbroken-text', ' lead')
    """
    if len(text) <= budget:
        return text
    end = text.rfind(" ", 0, budget + 1)
    head = text[:end].rstrip() if end > 0 else ""
    return head or text


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """`tokenizer(texts, add_special_tokens=False)["input_ids"]`, batched.

    A fast tokenizer whose backend is set as that call sets it (no truncation or padding; special tokens
    split or not as the tokenizer says) is asked through `encode_batch_fast`: the same ids, without the
    character offsets that the call also computes (an eighth to a quarter of its time on news text).

    Example:
        >>> from common.models.tiny import build_tokenizer
        >>> tokenizer = build_tokenizer()
        >>> texts = ["Rain.", "Snow fell."]
        >>> encode_texts(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]
        True
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not texts:
        return []
    if backend is None or backend.truncation or backend.padding \
            or backend.encode_special_tokens != getattr(tokenizer, "split_special_tokens", False):
        return tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]


def encode_heads(tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    """The first `limit` ids of each text, as `tokenizer(text, add_special_tokens=False)["input_ids"][:limit]`,
    tokenizing each text only about as far as they reach (see the module doc).

    Example:
        >>> from common.models.tiny import build_tokenizer
        >>> encode_heads(build_tokenizer(), ["Rain fell on Paris.", "Snow."], limit=3)
        [[50, 414, 270], [51, 78, 79]]
    """
    texts, wanted = list(texts), limit + MARGIN_TOKENS
    heads = [cut_at_whitespace(text, int(CHARS_PER_TOKEN * wanted)) for text in texts]
    ids = encode_texts(tokenizer, heads)
    short = [row for row, head in enumerate(heads) if len(head) < len(texts[row]) and len(ids[row]) <= wanted]
    for row, whole in zip(short, encode_texts(tokenizer, [texts[row] for row in short])):
        ids[row] = whole
    return [row_ids[:limit] for row_ids in ids]
