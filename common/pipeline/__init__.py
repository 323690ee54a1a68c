"""A run as named steps, shared by the three training scripts and generation-only runs (`steps`), and running
the shipped presets one after another, as the demo and the quality run do (`presets`). The top of the
library: it imports every layer below.
"""
