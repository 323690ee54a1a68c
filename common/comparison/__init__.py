"""Comparing systems after the runs: loading and aligning runs and CSVs, ROUGE with bootstrap CIs and paired
tests (`systems`), the Pareto fronts and the recommendation written from them (`recommendation`), the written
reports (`report`), plots (`plots`) and the runs in PEFT's method-comparison format (`peft_results`). Imports
`scoring`, `runs` and `core`.
"""
