"""Temporary alias of common.pipeline while the tests move over (removed in the same change)."""
from .pipeline import *  # noqa: F401,F403
from .pipeline import run_method  # noqa: F401
