"""Shared fixtures: a tiny random GPT-Neo with an offline tokenizer, and the fixture splits.

Every test runs offline (HF_HUB_OFFLINE=1 is forced here as well as in CI).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from common.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def fixture_files() -> dict[str, str]:
    return {split: str(FIXTURES / f"{split}.jsonl") for split in ("train", "validation", "test")}


def data_flags(files: dict[str, str]) -> list[str]:
    return ["--train_file", files["train"], "--validation_file", files["validation"], "--test_file", files["test"]]
