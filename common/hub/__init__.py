"""Publishing a finished run on the Hugging Face Hub: the upload folder with its model card, and the push
(`publish`). Downloads are `core.hub_access`'s. Imports `methods`, `runs` and `core`.
"""
