"""The one training path of every method: the Trainer with the label-position loss, cost-carrying checkpoints,
exact resume and the length-grouped sampler (`trainer`), and the callbacks that time training apart from
evaluation and record the learning curve (`callbacks`). Imports `generation` and below.
"""
