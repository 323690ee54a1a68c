"""One precision for every method, and the GPU-only paths that must not crash, proved on CPU.

CPU autocast runs the same code paths as a GPU's (`--use_cpu true --bf16 true`), and fp16 autocast works
on CPU too: the precision every generation uses, the attention kernel under fp16, the refusal of
FlashAttention-2 without half precision, and generation that leaves no inference tensors behind.
"""

from __future__ import annotations

import json

import pytest
import torch

import common.generation.generate
import train_finetune
import train_lora
import train_prefix_tuning
import train_soft_prompt
from common.models.fast_kernels import SDPASelfAttention
from common.predict import main as predict_main
from common.config.parsing import parse_run_config
from helpers import cli, data_flags, quick_flags

SCRIPTS = {"lora": train_lora.main, "soft_prompt": train_soft_prompt.main, "finetune": train_finetune.main,
           "prefix_tuning": train_prefix_tuning.main}  # its float32 prefix meets bf16 keys in the cache


@pytest.fixture()
def autocast_probe(monkeypatch):
    """What the attention sees while `generate_token_batch` runs: (autocast on, autocast dtype, query dtype)."""
    seen, inside = set(), []
    generate_batch, attend = common.generation.generate.generate_token_batch, SDPASelfAttention._attn

    def generate_token_batch(*args, **kwargs):
        inside.append(True)
        try:
            return generate_batch(*args, **kwargs)
        finally:
            inside.pop()

    def _attn(self, query, *args, **kwargs):
        if inside:
            seen.add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), query.dtype))
        return attend(self, query, *args, **kwargs)

    monkeypatch.setattr(common.generation.generate, "generate_token_batch", generate_token_batch)
    monkeypatch.setattr(SDPASelfAttention, "_attn", _attn)
    return seen


@pytest.mark.slow
def test_every_method_and_zero_shot_generate_in_the_same_precision_under_bf16(autocast_probe, tiny_model_dir,
                                                                              fixture_files, tmp_path):
    """--bf16 true --use_cpu true: the learning curve and the test summaries of every method, and zero-shot,
    run their attention under bf16 autocast on bf16 queries, and run.json says bf16-autocast."""
    bf16 = ["--bf16", "true", "--use_cpu", "true", "--max_steps", "1", "--max_new_tokens", "3"]
    seen, recorded = {}, {}
    for method, main in SCRIPTS.items():
        main([*quick_flags(tiny_model_dir, fixture_files, tmp_path / method), *bf16])
        seen[method], recorded[method] = set(autocast_probe), json.loads((tmp_path / method / "run.json").read_text())
        autocast_probe.clear()
    predict_main(["--model_name_or_path", str(tiny_model_dir), *data_flags(fixture_files), "--output_dir",
                  str(tmp_path / "zero_shot"), "--bf16", "true", "--use_cpu", "true", "--max_new_tokens", "3"])
    seen["zero_shot"] = set(autocast_probe)
    recorded["zero_shot"] = json.loads((tmp_path / "zero_shot" / "run.json").read_text())
    assert seen == {name: {(True, torch.bfloat16, torch.bfloat16)} for name in seen}, seen
    assert {name: run["generation_precision"] for name, run in recorded.items()} == dict.fromkeys(seen, "bf16-autocast")


def test_generation_is_fp32_without_mixed_precision(autocast_probe, tiny_model_dir, fixture_files, tmp_path):
    run = train_lora.main([*quick_flags(tiny_model_dir, fixture_files, tmp_path / "lora"), "--max_steps", "1",
                           "--max_new_tokens", "3"])
    assert autocast_probe == {(False, torch.get_autocast_dtype("cpu"), torch.float32)}
    assert run["generation_precision"] == "fp32"


def test_a_learning_curve_generation_leaves_no_inference_tensors_for_training(tiny_model_dir, tiny_tokenizer):
    """FSDP2 (on CPU, gloo, one process) gathers parameters into buffers at the first forward pass; the
    learning curve's start is that first pass. Generated under inference_mode, those buffers were inference
    tensors and the first training step failed; under no_grad training goes on."""
    import itertools
    import socket
    from types import SimpleNamespace

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

    from common.training.callbacks import CostClock, GenerateAndScoreCallback
    from common.config.arguments import DataArguments, GenerationArguments
    from common.data.prompts import build_prompts

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        mesh = init_device_mesh("cpu", (1,))
        for block in model.transformer.h:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        prompts = build_prompts(tiny_tokenizer, ["The council met on Tuesday. The vote was close."],
                                DataArguments(prompt_template="{article}\nTL;DR:"))
        callback = GenerateAndScoreCallback(tiny_tokenizer, prompts, ["The council met."],
                                            GenerationArguments(max_new_tokens=3), CostClock())
        args = SimpleNamespace(per_device_train_batch_size=1, gradient_accumulation_steps=1, world_size=1)
        callback.on_train_begin(args, TrainerState(), TrainerControl(), model=model)
        tensors = itertools.chain(model.named_parameters(), model.named_buffers())
        assert [name for name, tensor in tensors if tensor.is_inference()] == []
        ids = torch.tensor([prompts[0]])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    finally:
        dist.destroy_process_group()


def test_flash_attention_2_is_refused_without_half_precision(capsys):
    code, err = cli(train_lora.main, ["--attn_implementation", "flash_attention_2"], capsys)
    assert code == 2 and "--attn_implementation flash_attention_2 computes in half precision only" in err
    assert parse_run_config("lora", ["--attn_implementation", "flash_attention_2", "--bf16", "true",
                                     "--use_cpu", "true"]).training.mixed_precision == "bf16"


def test_fp16_with_gpt_neos_own_attention_is_refused_before_the_model_loads(tiny_model_dir, fixture_files, tmp_path,
                                                                            capsys, monkeypatch):
    import common.pipeline.steps

    monkeypatch.setattr(common.pipeline.steps, "load_base_model", lambda *a: pytest.fail("the model was loaded"))
    flags = [*quick_flags(tiny_model_dir, fixture_files, tmp_path / "lora"), "--fp16", "true", "--use_cpu", "true"]
    code, err = cli(train_lora.main, [*flags, "--fast_kernels", "false"], capsys)
    assert code == 2 and "--fp16 with --fast_kernels false: GPT-Neo's own attention overflows fp16" in err
