"""Our ROUGE as a Hugging Face `evaluate` metric that loads from this file, with no Hub access.

`evaluate.load("rouge")` fetches its script from the Hub; this file gives the same call offline and
scores through `common.scoring.rouge.rouge_scores`, so its numbers are identical to the training callback's
and `evaluate_all.py`'s: `rouge_score` F1 with Porter stemming, both texts split into sentences for
ROUGE-Lsum, empty or missing predictions scoring 0, keys rouge1, rouge2, rougeL and rougeLsum.
Scale: F1 x 100 like the rest of this project, not the Hub metric's 0-1 (divide by 100 to compare).
One reference string per prediction (the Hub metric also takes several).

Load it by the path of this file, from the project root (or with an absolute path):

    >>> import evaluate
    >>> rouge = evaluate.load("common/scoring/rouge_metric.py")
    >>> rouge.compute(predictions=["The cat sat on the mat."], references=["The cat sat on a mat."])["rouge1"]
    83.33...

Why a file beside `rouge.py`: `evaluate.load` copies the script into its modules cache
(~/.cache/huggingface/modules/evaluate_modules/) and imports it from there, so `import common` would
only work when the project root happens to be on sys.path. A relative import of a file in the same
folder is the one local import evaluate supports: it copies `rouge.py` beside the script, where
`from .rouge import ...` resolves; inside the project the same line is an ordinary package import.
"""

from __future__ import annotations

import datasets
import evaluate

from .rouge import ROUGE_KEYS, rouge_per_example, rouge_scores


class Rouge(evaluate.Metric):
    """ROUGE-1/2/L/Lsum F1 x 100, means over the examples (per example with `use_aggregator=False`).

    Example:
        >>> Rouge(keep_in_memory=True).compute(predictions=["a dog"], references=["a dog"], use_aggregator=False)
        {'rouge1': [100.0], 'rouge2': [100.0], 'rougeL': [100.0], 'rougeLsum': [100.0]}
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__.split("\n")[0],
            citation="Lin, Chin-Yew. ROUGE: A Package for Automatic Evaluation of Summaries. ACL workshop, 2004.",
            inputs_description="predictions: list of str; references: list of str (one per prediction); "
                               "use_aggregator: bool, default True (False: one score per example).",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions: list[str], references: list[str], use_aggregator: bool = True) -> dict:
        if use_aggregator:
            return rouge_scores(predictions, references)
        per_example = rouge_per_example(predictions, references)
        return {key: [scores[key] for scores in per_example] for key in ROUGE_KEYS}
