"""Baselines that need no model: lead-3, the article's first three sentences (the classic CNN/DailyMail
baseline, hard to beat on ROUGE because the articles put the news first).

Example:
    >>> lead3("One. Two! Three? Four.")
    'One. Two! Three?'
"""

from __future__ import annotations

from .rouge import clean_prediction, split_sentences


def lead3(article: str) -> str:
    """The article's first three sentences.

    Example:
        >>> lead3("One. Two! Three? Four.")
        'One. Two! Three?'
    """
    return " ".join(split_sentences(clean_prediction(article))[:3])
