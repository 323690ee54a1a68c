"""Scores that need no model: ROUGE as plain functions over lists of strings, shared by the training callback,
the comparison and the tests (`rouge`, and `rouge_metric` for Hugging Face `evaluate`), bootstrap confidence
intervals and paired permutation tests (`stats`), and the lead-3 baseline (`baselines`). Imports `core` and
`runs` (reading a predictions CSV) only.
"""
