"""Foundations with no machine learning in them: one-line user errors and the script runner (`cli`), files
written atomically (`atomic`), and the rule for reaching the Hugging Face Hub for downloads, the local cache
first (`hub_access`). Every other layer may import this one; it imports none of them.
"""
