"""The toolkit's library, in layers: each folder is one layer and imports only the layers listed before it.

    core        errors, the script runner, atomic files, the Hub for downloads
    runs        the files a run writes (predictions CSV, run.json) and the run folder as a transaction
    scoring     ROUGE, bootstrap CIs and paired tests, the lead-3 baseline
    models      base models and tokenizers in, fused kernels, the tiny and offline models
    methods     the method registry and one builder per method; saving, reloading and merging what was trained
    config      the typed arguments and the YAML + CLI parser
    data        splits in, prompts and masked training examples, lengths against the model
    generation  batched summaries in one precision, on an in-place KV cache
    training    the Trainer every method trains with, its callbacks
    comparison  systems compared with CIs and paired tests, reports and plots
    hub         a finished run published on the Hub
    pipeline    a run as named steps; the shipped presets run in turn

The modules directly in this folder are commands (`python -m common.demo`, `common.predict`, `common.zero_shot`,
`common.push`, `common.tiny_model`, `common.offline_model`), above every layer. `tests/test_layers.py` checks
the order from the imports themselves.
"""
