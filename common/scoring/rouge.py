"""ROUGE as plain functions over lists of strings, shared by training, evaluate_all.py and tests.

Scores are `rouge_score` F1 x 100 with Porter stemming. ROUGE-Lsum needs one sentence per line,
so both texts are split into sentences first (a small regex splitter: no nltk download).

Example:
    >>> rouge_scores(["The cat sat on the mat."], ["The cat sat on a mat."])["rouge1"]
    83.33...
"""

from __future__ import annotations

import math
import re

from rouge_score import rouge_scorer

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
_SCORER = None


# Words whose final period does not end a sentence in news text ("Dr. Dayo Adeyanju said").
ABBREVIATIONS = frozenset("""Mr. Mrs. Ms. Dr. Prof. Sen. Rep. Gov. Gen. Lt. Col. Sgt. Capt. Cmdr. Adm. Maj. Rev.
    St. Mt. Ft. Jr. Sr. No. Nos. Inc. Co. Corp. Ltd. vs. v. Jan. Feb. Mar. Apr. Aug. Sept. Sep. Oct. Nov. Dec.
    U.S. U.K. U.N. D.C. L.A. a.m. p.m. e.g. i.e. approx. est.""".split())


def _ends_with_abbreviation(text: str) -> bool:
    """True when the last word is a known abbreviation or an initial ("J.")."""
    last = text.rsplit(None, 1)[-1].lstrip("\"'(\u201c\u2018[")
    return last in ABBREVIATIONS or (len(last) == 2 and last[0].isupper() and last[1] == ".")


def _merge_after_abbreviations(parts: list[str]) -> list[str]:
    """Rejoin pieces split after "Dr." or "F.": ["Dr.", "Adeyanju said."] -> ["Dr. Adeyanju said."]."""
    merged: list[str] = []
    for part in parts:
        if merged and _ends_with_abbreviation(merged[-1]):
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    return merged


def split_sentences(text: str) -> list[str]:
    """Split on newlines and on sentence-final punctuation followed by a capitalised word, except after
    an abbreviation or an initial.

    Example:
        >>> split_sentences("He left. She stayed!\\nThen rain")
        ['He left.', 'She stayed!', 'Then rain']
        >>> split_sentences("Dr. Adeyanju and John F. Kennedy met. Then rain")
        ['Dr. Adeyanju and John F. Kennedy met.', 'Then rain']
    """
    sentences = []
    for line in text.splitlines():
        sentences.extend(_merge_after_abbreviations([p.strip() for p in _SENTENCE_END.split(line) if p.strip()]))
    return sentences


def lsum_text(text: str) -> str:
    """The text with one sentence per line, as ROUGE-Lsum expects."""
    return "\n".join(split_sentences(text))


def _scorer() -> rouge_scorer.RougeScorer:
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    return _SCORER


def clean_prediction(value) -> str:
    """A prediction as text: NaN, None and non-strings become '' (they score 0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def mean_words(texts: list[str]) -> float:
    """Mean whitespace-separated word count (NaN for no texts).

    Example:
        >>> mean_words(["a b", "c d e f"])
        3.0
    """
    return sum(len(clean_prediction(t).split()) for t in texts) / len(texts) if len(texts) else math.nan


def rouge_per_example(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """F1 x 100 of each key for each (prediction, reference) pair."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scores = []
    for prediction, reference in zip(predictions, references):
        pred, ref = lsum_text(clean_prediction(prediction)), lsum_text(clean_prediction(reference))
        result = _scorer().score(ref, pred)
        scores.append({key: 100.0 * result[key].fmeasure for key in ROUGE_KEYS})
    return scores


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean F1 x 100 over the examples for rouge1, rouge2, rougeL and rougeLsum."""
    per_example = rouge_per_example(predictions, references)
    if not per_example:
        return {key: 0.0 for key in ROUGE_KEYS}
    return {key: sum(s[key] for s in per_example) / len(per_example) for key in ROUGE_KEYS}


def calculate_rouge_from_csv(path) -> dict[str, float]:
    """Mean ROUGE of a CSV with `Predicted Summary` and `Actual Summary` columns (the classic workflow).

    Prints `ROUGE-1: x, ROUGE-2: y, ROUGE-L: z` (2 decimals) and returns all four means.

    Example (a classic CSV in a temporary folder):
        >>> import os
        >>> import tempfile
        >>> import pandas as pd
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "predictions.csv")
        ...     pd.DataFrame({"Predicted Summary": ["The cat sat on a mat."],
        ...                   "Actual Summary": ["The cat sat on the mat."]}).to_csv(path, index=False)
        ...     scores = calculate_rouge_from_csv(path)
        ROUGE-1: 83.33, ROUGE-2: 60.00, ROUGE-L: 83.33
        >>> sorted(scores)
        ['rouge1', 'rouge2', 'rougeL', 'rougeLsum']
    """
    from ..runs.outputs import read_predictions_csv, text_column  # local: runs.outputs imports torch; this does not

    frame = read_predictions_csv(path)
    scores = rouge_scores(text_column(frame, "Predicted Summary"), text_column(frame, "Actual Summary"))
    print(f"ROUGE-1: {scores['rouge1']:.2f}, ROUGE-2: {scores['rouge2']:.2f}, ROUGE-L: {scores['rougeL']:.2f}")
    return scores
