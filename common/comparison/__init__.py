"""Comparing systems after the runs: loading and aligning runs and CSVs, ROUGE with bootstrap CIs and paired
tests (`systems`), the written reports (`report`) and plots (`plots`). Imports `scoring`, `runs` and `core`.
"""
