"""Shared fixtures: a tiny random GPT-Neo with an offline tokenizer, the fixture splits and the test Hub.

Every test runs offline (HF_HUB_OFFLINE=1 is forced here as well as in CI). huggingface_hub and
datasets read HF_ENDPOINT and HF_HOME when they are imported, so both are set here, before any test
module imports them: the endpoint is a port on 127.0.0.1 reserved for the test Hub server
(`tests/hub_server.py`, started by the `hub_server` fixture), and HF_HOME a fresh folder, so no test
reads the user's cache or token, or reaches the real Hub.

Only that environment and the fixtures live here; helpers that test modules import are in `tests/helpers.py`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="pytest-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE"):
    os.environ.pop(_name, None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root: `common`, the scripts

from helpers import FIXTURES  # noqa: E402 - after the environment above, as everything imported from here on


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from common.models.tiny import write_tiny_model

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


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """The test Hub (tests/hub_server.py) on the port HF_ENDPOINT names, for the whole session."""
    from hub_server import HubServer

    server = HubServer(root=tmp_path_factory.mktemp("hub"), port=HUB_PORT).start()
    yield server
    server.stop()
