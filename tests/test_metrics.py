"""ROUGE helpers against rouge_score on hand-made strings; the `evaluate` metric against them."""

from pathlib import Path

import evaluate
import pytest
from rouge_score import rouge_scorer

from common.scoring.baselines import lead3
from common.scoring.rouge import ROUGE_KEYS, lsum_text, rouge_per_example, rouge_scores, split_sentences


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


def test_evaluate_metric_loads_offline_and_equals_our_scorer(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the README's relative path, from the project root
    predictions = ["the cat sat on the mat", "The dog ran. The cat sat.", "", "Dr. Adeyanju spoke. Rain fell."]
    references = ["the cat sat on a mat", "The cat sat. The dog ran.", "A dog barked.",
                  "Rain fell. Dr. Adeyanju spoke."]
    rouge = evaluate.load("common/scoring/rouge_metric.py")  # HF_HUB_OFFLINE=1 (conftest): nothing is fetched
    result = rouge.compute(predictions=predictions, references=references)
    assert result == rouge_scores(predictions, references)  # exact: the same code on the same strings
    assert list(result) == list(ROUGE_KEYS)
    # per example: 5 of 6 words shared; swapped sentences (Lsum 100, L 3 of 6); empty 0; 'Dr.' does not end a
    # sentence, so swapping 'dr adeyanju spoke' and 'rain fell' gives Lsum 100, L 3 of 5
    assert result["rougeLsum"] == pytest.approx((500 / 6 + 100 + 0 + 100) / 4)
    per_example = rouge.compute(predictions=predictions, references=references, use_aggregator=False)
    assert per_example == {key: [scores[key] for scores in rouge_per_example(predictions, references)]
                           for key in ROUGE_KEYS}
    assert per_example["rougeL"] == pytest.approx([500 / 6, 50.0, 0.0, 60.0])
