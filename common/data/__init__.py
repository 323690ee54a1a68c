"""Examples in: the splits from local files or the Hub with every bad row named (`loading`), prompts and training
examples with the prompt masked out of the labels when they are built, and the padding collator (`prompts`),
texts tokenized only as far as a prompt keeps them (`encoding`), and the sequence lengths checked against the
model's positions (`lengths`). Imports `config` and below.
"""
