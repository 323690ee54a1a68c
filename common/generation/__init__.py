"""Summaries out: batched, length-sorted generation sharded over processes and gathered in prompt order, in one
precision for every method (`generate`), on a KV cache written in place (`kv_cache`). Imports `data`,
`methods`, `config` and below.
"""
