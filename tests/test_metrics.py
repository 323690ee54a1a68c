"""ROUGE helpers against rouge_score on hand-made strings."""

import pytest
from rouge_score import rouge_scorer

from common.evaluation import lead3
from common.metrics import ROUGE_KEYS, lsum_text, rouge_per_example, rouge_scores, split_sentences


def test_split_sentences():
    assert split_sentences("He left. She stayed!\nThen rain fell? Yes") == ["He left.", "She stayed!",
                                                                             "Then rain fell?", "Yes"]
    assert split_sentences("Pay $3.50 now. Mr. smith agreed.") == ["Pay $3.50 now.", "Mr. smith agreed."]


def test_rouge_equals_rouge_score_on_single_sentences():
    pred, ref = "the cat sat on the mat", "the cat was on the mat"
    expected = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True).score(ref, pred)
    scores = rouge_per_example([pred], [ref])[0]
    for key in ROUGE_KEYS:
        assert scores[key] == pytest.approx(100 * expected[key].fmeasure)
    assert scores["rouge1"] == pytest.approx(100 * 5 / 6)  # 5 of 6 unigrams shared both ways


def test_lsum_uses_the_sentence_split():
    pred = "Police closed the road. The storm hit the coast."
    ref = "The storm hit the coast.\nPolice closed the road."
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    split_expected = 100 * scorer.score(ref, pred.replace(". ", ".\n")).get("rougeLsum").fmeasure
    scores = rouge_per_example([pred], [ref])[0]
    assert lsum_text(pred) == "Police closed the road.\nThe storm hit the coast."
    assert scores["rougeLsum"] == pytest.approx(split_expected) == pytest.approx(100.0)
    assert scores["rougeL"] == pytest.approx(100 * 5 / 9)  # one sentence order: LCS 5 of 9 tokens


def test_mean_over_examples_and_empty_prediction_scores_zero():
    scores = rouge_scores(["the cat", float("nan")], ["the cat", "a dog"])
    assert scores["rouge1"] == pytest.approx(50.0)
    assert rouge_per_example([""], ["a dog"])[0] == {key: 0.0 for key in ROUGE_KEYS}


def test_sentences_do_not_end_after_titles_or_initials():
    article = ("(CNN)An illness has killed 18 people, officials said Sunday. Dr. Dayo Adeyanju said five are "
               "treated. John F. Kennedy Airport was shut at 4 p.m. Local time. The end")
    assert split_sentences(article) == [
        "(CNN)An illness has killed 18 people, officials said Sunday.",
        "Dr. Dayo Adeyanju said five are treated.",
        "John F. Kennedy Airport was shut at 4 p.m. Local time.",  # "p.m." stays inside, as a known trade-off
        "The end",
    ]
    assert lead3(article) == ("(CNN)An illness has killed 18 people, officials said Sunday. Dr. Dayo Adeyanju "
                              "said five are treated. John F. Kennedy Airport was shut at 4 p.m. Local time.")
