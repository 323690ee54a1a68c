"""The benchmark's parts: the FLOP model on hand-computed cases, the naive baseline's padding, the stock
baseline's loss and generations against ours, the data and length scaling scripts, and the harness end to end
on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import GPTNeoConfig, GPTNeoForCausalLM

from benchmarks.flops import FlopCounter, causal_pairs, matmul_peak
from benchmarks.naive import naive_batch, naive_length
from common.config.arguments import DataArguments, ModelArguments
from common.methods import FinetuneArguments, LoraArguments, SoftPromptArguments

IGNORE = -100


@pytest.mark.parametrize(("length", "window", "pairs"), [
    (1, None, 1),
    (4, None, 1 + 2 + 3 + 4),
    (4, 4, 1 + 2 + 3 + 4),   # a window as long as the sequence changes nothing
    (4, 9, 1 + 2 + 3 + 4),
    (4, 2, 1 + 2 + 2 + 2),   # from the second query on, each sees 2 keys
    (5, 1, 5),               # each query sees itself only
    (6, 3, 1 + 2 + 3 + 3 + 3 + 3),
])
def test_causal_pairs(length, window, pairs):
    assert causal_pairs(length, window) == pairs


def small_gpt_neo() -> GPTNeoForCausalLM:
    """2 blocks (global, then local with a 2-key window), hidden 8, 2 heads of 4, MLP 16, vocab 32.

    Its nn.Linear layers per block: q, k, v, out_proj (8 x 8 each) and c_fc (8 -> 16), c_proj (16 -> 8);
    one forward pass over a row costs 2*in*out each: 4 * 2*8*8 + 2 * 2*8*16 = 512 + 512 = 1024 per block.
    The LM head (8 -> 32, tied to the input embedding) costs 2*8*32 = 512 per row.
    """
    torch.manual_seed(0)
    config = GPTNeoConfig(vocab_size=32, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                          attention_types=[[["global", "local"], 1]], window_size=2, max_position_embeddings=16,
                          bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
    return GPTNeoForCausalLM(config)


def hand_batch() -> dict:
    """Two rows of 3 and 5 tokens in a batch 5 wide; 1 + 3 labelled next-token positions (labels[:, 1:])."""
    return {"input_ids": torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]]),
            "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]),
            "labels": torch.tensor([[IGNORE, IGNORE, 7, IGNORE, IGNORE], [IGNORE, IGNORE, 10, 11, 12]])}


# Causal pairs of the hand batch per layer: global sees all keys: causal_pairs(3) + causal_pairs(5) = 6 + 15 = 21;
# local sees 2 keys: causal_pairs(3, 2) + causal_pairs(5, 2) = (1+2+2) + (1+2+2+2+2) = 5 + 9 = 14.
# Attention costs 4 * d * pairs with d = 2 heads x 4 = 8, so 32 * pairs forward.


def test_flops_of_a_frozen_model():
    model = small_gpt_neo().requires_grad_(False)
    counter = FlopCounter(model, hand_batch())
    assert (counter.attn_dim, counter.windows, counter.virtual) == (8, [None, 2], 0)
    assert counter.body == 2 * 1024  # two blocks, forward only
    assert counter.head == 512
    assert counter.block_grads == [False, False]
    # body x 8 real tokens + head x 4 labelled positions + 32 x (21 + 14) attention pairs
    assert counter.step(hand_batch()) == 2048 * 8 + 512 * 4 + 32 * 35 == 19_552
    # Executed: both rows at width 5 (10 rows of tokens), 5 x 5 scores per layer and row.
    attention = 2 * 2 * 4 * 8 * 5 * 5  # rows x layers x 4d x width^2 = 3,200
    assert counter.executed(hand_batch(), head_everywhere=True) == 2048 * 10 + 512 * 10 + attention == 28_800
    assert counter.executed(hand_batch(), head_everywhere=False) == 2048 * 10 + 512 * 4 + attention == 25_728


def test_flops_of_a_fully_trained_model():
    model = small_gpt_neo()
    counter = FlopCounter(model, hand_batch())
    # Every linear's input depends on trained tensors (embeddings, norms) and every weight trains: 3 passes.
    assert (counter.body, counter.head, counter.block_grads) == (3 * 2048, 3 * 512, [True, True])
    assert counter.step(hand_batch()) == 6144 * 8 + 1536 * 4 + 3 * 32 * 35 == 58_656


def test_flops_when_only_the_last_projection_trains():
    model = small_gpt_neo().requires_grad_(False)
    model.transformer.h[1].mlp.c_proj.requires_grad_(True)
    counter = FlopCounter(model, hand_batch())
    # Block 0 and block 1 up to c_fc: forward only, 1024 + (4 * 128 + 256) = 1,792.
    # c_proj (16 -> 8): forward + weight gradient (its input needs none) = 2 * 2*16*8 = 512.
    # LM head: forward + input gradient (its input now depends on c_proj; its weight is frozen) = 2 * 512.
    assert (counter.body, counter.head, counter.block_grads) == (1792 + 512, 1024, [False, True])
    # Attention: the global layer (block 0) x1, the local layer (block 1) x3: 32 x (21 + 3 x 14) = 2,016.
    assert counter.step(hand_batch()) == 2304 * 8 + 1024 * 4 + 2016 == 24_544


def linear(inputs: int, outputs: int, passes: int) -> int:
    return 2 * inputs * outputs * passes


# The tiny GPT-Neo (common.tiny_model): 2 blocks, hidden 64, MLP 256, vocab 512, LM head tied to the embedding.
LORA_BLOCK_0 = (3 * (linear(64, 64, 1) + linear(64, 4, 2) + linear(4, 64, 3))  # q, k, v: input needs no gradient
                + linear(64, 64, 2) + linear(64, 4, 3) + linear(4, 64, 3)      # out_proj: its input now does
                + linear(64, 256, 2) + linear(64, 4, 3) + linear(4, 256, 3)    # c_fc
                + linear(256, 64, 2) + linear(256, 4, 3) + linear(4, 64, 3))   # c_proj
LORA_BLOCK_1 = (4 * (linear(64, 64, 2) + linear(64, 4, 3) + linear(4, 64, 3))
                + linear(64, 256, 2) + linear(64, 4, 3) + linear(4, 256, 3)
                + linear(256, 64, 2) + linear(256, 4, 3) + linear(4, 64, 3))
FROZEN_BLOCK = 4 * linear(64, 64, 1) + linear(64, 256, 1) + linear(256, 64, 1)  # 98,304


@pytest.mark.parametrize(("method", "arguments", "body", "head", "grads", "virtual"), [
    # LoRA r=4 on every linear but the head: base weights frozen (forward, + input gradient once the input
    # depends on an adapter), A and B train (+ weight gradient). 198,144 + 224,256.
    ("lora", LoraArguments(r=4, lora_alpha=8, lora_dropout=0.0), LORA_BLOCK_0 + LORA_BLOCK_1,
     linear(64, 512, 2), [True, True], 0),
    # Soft prompt: only the prompt trains; every linear's input depends on it, so forward + input gradient.
    ("soft_prompt", SoftPromptArguments(num_virtual_tokens=5, prompt_init="random"), 2 * 2 * FROZEN_BLOCK,
     linear(64, 512, 2), [True, True], 5),
    # Last block and final norm train: block 0 forward only, block 1 all three passes (its ln_1 trains).
    ("finetune", FinetuneArguments(num_trainable_layers=1), FROZEN_BLOCK + 3 * FROZEN_BLOCK,
     linear(64, 512, 2), [False, True], 0),
])
def test_flops_of_each_method_on_the_tiny_model(method, arguments, body, head, grads, virtual, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from common.methods import build_method

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = build_method(method, base, arguments, ModelArguments(model_name_or_path=str(tiny_model_dir)))
    counter = FlopCounter(model, hand_batch())
    assert (counter.body, counter.head, counter.block_grads, counter.virtual) == (body, head, grads, virtual)
    assert (LORA_BLOCK_0, LORA_BLOCK_1) == (198_144, 224_256)


def test_matmul_peak_reports_its_shape():
    peak = matmul_peak("cpu", "fp32", 8, 4, 2, repeats=1)
    assert peak["shape"] == [8, 4, 2] and peak["flop_per_s"] > 0


def test_naive_batch_pads_every_row_to_the_longest_possible_example():
    batch = naive_batch(hand_batch(), pad_id=-8, length=7)
    assert batch["input_ids"].tolist() == [[5, 6, 7, -8, -8, -8, -8], [8, 9, 10, 11, 12, -8, -8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, 7, IGNORE, IGNORE, IGNORE, IGNORE],
                                        [IGNORE, IGNORE, 10, 11, 12, IGNORE, IGNORE]]


def test_naive_length_is_template_article_and_summary(tiny_tokenizer):
    from common.data.prompts import make_prompt_parts

    data = DataArguments(prompt_template="{article}", max_source_length=32, max_target_length=8)
    parts = make_prompt_parts(tiny_tokenizer, data)
    assert naive_length(tiny_tokenizer, data) == len(parts.prefix_ids) + 32 + len(parts.suffix_ids) + 8


def test_default_data_dir(tmp_path):
    from benchmarks.benchmark import default_data_dir

    root = tmp_path / "project"
    assert default_data_dir(root) == root / "data" / "sample"
    shared = tmp_path / "shared" / "data" / "cnn_dailymail"
    shared.mkdir(parents=True)
    (shared / "train.jsonl").touch()
    assert default_data_dir(root) == root / "data" / "sample"  # no test.jsonl yet
    (shared / "test.jsonl").touch()
    assert default_data_dir(root) == shared


def test_benchmark_refuses_a_data_dir_without_splits(tmp_path):
    from benchmarks.benchmark import main, make_parser

    with pytest.raises(SystemExit, match="must hold train.jsonl and test.jsonl"):
        main(make_parser().parse_args(["--data_dir", str(tmp_path)]))


def test_quality_run_refuses_a_data_dir_without_the_three_splits(tmp_path, monkeypatch):
    from benchmarks import quality_run

    monkeypatch.chdir(tmp_path)  # main changes into the project root; monkeypatch changes back afterwards
    (tmp_path / "validation.jsonl").touch()
    with pytest.raises(SystemExit, match="missing train.jsonl, test.jsonl; pass --data_dir"):
        quality_run.main(["--data_dir", str(tmp_path)])


def _rows(prefix: str, count: int, cnn_every: int = 2) -> list[dict]:
    return [{"id": f"{prefix}{i}", "article": (f"(CNN) {prefix} story {i}" if i % cnn_every == 0
                                                else f"By . Reporter . {prefix} story {i}"), "highlights": f"h {i}"}
            for i in range(count)]


def test_quality_carve_is_disjoint_seeded_and_mixes_outlets_as_the_test_split(tmp_path, monkeypatch):
    from benchmarks.quality_data import DAILYMAIL_SHARE, carve, outlet

    validation, train, test = _rows("v", 400), _rows("t", 10), _rows("x", 30, cnn_every=1)
    splits = carve(validation, train, test, mixed_test_rows=100, dev_rows=20, cnn_test_rows=25, seed=3)
    assert {name: len(rows) for name, rows in splits.items()} == {
        "train": 400 - 100 - 20 + 10, "dev": 20, "test_cnn": 25, "test_mixed": 100}
    assert sum(outlet(row["article"]) == "dailymail" for row in splits["test_mixed"]) == round(100 * DAILYMAIL_SHARE) == 90
    assert sum(outlet(row["article"]) == "dailymail" for row in splits["dev"]) == 10
    assert [row["id"] for row in splits["test_cnn"]] == [f"x{i}" for i in range(25)]
    ids = [row["id"] for rows in splits.values() for row in rows]
    assert len(ids) == len(set(ids)) == 400 + 10 + 25
    again = carve(validation, train, test, mixed_test_rows=100, dev_rows=20, cnn_test_rows=25, seed=3)
    other = carve(validation, train, test, mixed_test_rows=100, dev_rows=20, cnn_test_rows=25, seed=4)
    assert again == splits and other["test_mixed"] != splits["test_mixed"]


def test_quality_carve_names_the_split_that_runs_short():
    from benchmarks.quality_data import carve

    with pytest.raises(ValueError, match="mixed test, DailyMail rows: 90 rows needed, 50 available"):
        carve(_rows("v", 100), [], [], mixed_test_rows=100, dev_rows=0, cnn_test_rows=0, seed=0)


def test_quality_carve_refuses_a_row_in_two_splits():
    from benchmarks.quality_data import carve

    validation = _rows("v", 40)
    with pytest.raises(ValueError, match="id 'v0' is in both"):
        carve(validation, [validation[0]], [], mixed_test_rows=10, dev_rows=4, cnn_test_rows=0, seed=0)


def test_quality_run_writes_every_split_from_the_data_dir(tmp_path, monkeypatch):
    from benchmarks import quality_run

    for name, rows in (("validation", _rows("v", 400)), ("train", _rows("t", 5)), ("test", _rows("x", 8, 1))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setattr(quality_run, "SPLIT_DIR", tmp_path / "splits")
    quality_run.main(["--data_dir", str(tmp_path), "--carve_only", "--mixed_test_rows", "50", "--dev_rows", "10",
                      "--cnn_test_rows", "8"])
    counts = {path.stem: len(path.read_text().splitlines()) for path in (tmp_path / "splits").iterdir()}
    assert counts == {"train": 345, "dev": 10, "test_cnn": 8, "test_mixed": 50}


def test_decoding_ablation_presets_change_only_the_decoding():
    """A trained run regenerates its preset's rows, prompt and token cap from its adapter, decoded another way;
    zero-shot keeps its own cap and has no adapter; no generation-only run carries the curve's beams."""
    from benchmarks.decoding_ablation import decoding_overrides
    from benchmarks.quality_run import MIXED_TEST_USED, RUNS_DIR, adapter_path, generation_preset

    folder = RUNS_DIR / "mixed_beams_1" / "finetune_beams_1"
    preset = generation_preset("finetune", "test_mixed", folder)
    greedy = generation_preset("finetune", "test_mixed", folder, **decoding_overrides(num_beams=1, no_repeat=3))
    assert {key: value for key, value in greedy.items() if greedy[key] != preset.get(key)} == {"num_beams": 1}
    assert (preset["trained_path"], preset["test_file"], preset["max_test_samples"], preset["max_new_tokens"],
            preset["num_beams"], preset["no_repeat_ngram_size"]) == (
        adapter_path("finetune"), "runs/quality/data/test_mixed.jsonl", MIXED_TEST_USED, 96, 4, 3)
    assert "eval_num_beams" not in preset and preset["num_eval_generate"] == 0
    baseline = generation_preset("zero_shot", "test_cnn", RUNS_DIR / "x", **decoding_overrides(num_beams=2, no_repeat=0))
    assert "trained_path" not in baseline and baseline["max_new_tokens"] == 64 and baseline["max_test_samples"] == 80
    assert generation_preset("zero_shot", "test_cnn", RUNS_DIR / "x",
                             **decoding_overrides(2, 0, max_test_samples=40))["max_test_samples"] == 40
    assert (baseline["num_beams"], baseline["no_repeat_ngram_size"], baseline["test_file"]) == (
        2, 0, "runs/quality/data/test_cnn.jsonl")


def test_decoding_ablation_refuses_before_any_run_without_the_greedy_runs(tmp_path, monkeypatch):
    from benchmarks import decoding_ablation, quality_run

    monkeypatch.setattr(quality_run, "RUNS_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)  # main changes into the project root; monkeypatch changes back afterwards
    with pytest.raises(SystemExit, match="no finished preset run in .*mixed/lora.*mixed/zero_shot.*quality_run.py"):
        decoding_ablation.main(["--systems", "lora", "zero_shot"])
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_benchmark_harness_on_the_tiny_model(tmp_path, fixture_files, capsys):
    from benchmarks.benchmark import METHODS, main, make_parser

    out = tmp_path / "bench.json"
    main(make_parser().parse_args([
        "--model", "tiny", "--steps", "1", "--warmup", "0", "--gen_examples", "2", "--max_new_tokens", "4",
        "--train_pool", "4", "--batch_size", "2", "--max_source_length", "32", "--max_target_length", "8",
        "--data_dir", str(Path(fixture_files["train"]).parent), "--out", str(out)]))
    results = json.loads(out.read_text())
    assert list(results["methods"]) == list(METHODS)
    for method, result in results["methods"].items():
        for path in ("ours", "stock", "naive"):
            assert all(result[path][key] > 0 for key in ("train_tokens_per_s", "s_per_step", "flop_per_step",
                                                          "executed_flop_per_step", "gen_tokens_per_s",
                                                          "matmul_fraction"))
            assert result[path]["gen_prompts"] == 2
        assert result["same_generations"] == result["same_generations_stock"] == "2/2"
        assert result["stock"]["gen_prompts"] == 2 and result["probe_loss"]["max_abs_difference"] < 1e-5
        assert result["stock"]["generation_path"] == {"soft_prompt": "stock (ours for soft prompt)",
                                                      "prefix_tuning": "stock (ours for prefix tuning)"}.get(method,
                                                                                                             "stock")
        assert result["ratio_stock"]["executed_flops_stock_over_ours"] > 1  # the full-vocabulary head
        assert result["ours"]["flop_per_step"] == result["naive"]["flop_per_step"]  # the same work counted
        assert result["ratio"]["executed_flops_naive_over_ours"] > 1  # the naive step pads and runs the full head
        assert set(results["projections"][method]) == {"epochs"} | {
            f"{path}_{what}_hours" for path in ("ours", "stock", "naive") for what in ("train", "generate_test")}
    assert results["projections"]["lora"]["epochs"] == 6
    table = capsys.readouterr().out
    assert "| method | path | train tok/s |" in table and f"Written to {out}" in table
    assert all(f"| {method} | ours/{other} |" in table for method in METHODS for other in ("stock", "naive"))
    assert "(ours for soft prompt)" in table


# The stock baseline (benchmarks/stock.py) against ours, on the tiny model and the fixture rows.

def bench_parts(method, tiny_model_dir, fixture_files, tmp_path, batch_size=3):
    """Ours as the benchmark builds it (RunConfig, method, SummarizationTrainer), its first batch, and the
    stock Trainer on the same model."""
    from benchmarks.benchmark import draw_batches, make_parser, run_config
    from benchmarks.stock import stock_trainer
    from common.data.loading import load_splits
    from common.methods import build_method
    from common.models.loading import load_base_model, load_tokenizer
    from common.training.trainer import build_trainer

    settings = make_parser().parse_args([
        "--batch_size", str(batch_size), "--train_pool", "6", "--gen_examples", "5", "--gen_batch_size", "2",
        "--max_new_tokens", "6", "--max_source_length", "40", "--max_target_length", "8", "--device", "cpu"])
    cfg = run_config(settings, method, Path(fixture_files["train"]).parent, str(tiny_model_dir), str(tiny_model_dir),
                     tmp_path)
    tokenizer, (splits, _) = load_tokenizer(cfg.model), load_splits(cfg.data)
    model = build_method(method, load_base_model(cfg.model), cfg.method, cfg.model)
    trainer = build_trainer(cfg, model, tokenizer, splits)
    stock = stock_trainer(trainer.args, model, tokenizer)
    return cfg, tokenizer, splits, model, trainer, draw_batches(trainer, 2), stock


@pytest.mark.parametrize("method", ["lora", "soft_prompt", "finetune"])
def test_stock_loss_equals_ours_on_a_probe_batch(method, tiny_model_dir, fixture_files, tmp_path):
    from benchmarks.stock import probe_losses

    _, _, _, model, trainer, batches, stock = bench_parts(method, tiny_model_dir, fixture_files, tmp_path)
    probe = probe_losses(trainer, stock, model, batches[0])
    assert probe["ours"] > 0
    assert probe["stock"] == pytest.approx(probe["ours"], abs=1e-5)
    assert probe["max_abs_difference"] == abs(probe["ours"] - probe["stock"]) < 1e-5


def test_stock_batches_hold_the_same_examples_per_group(tiny_model_dir, fixture_files, tmp_path):
    from benchmarks.stock import stock_batches, unpadded_rows

    _, tokenizer, _, _, _, batches, stock = bench_parts("lora", tiny_model_dir, fixture_files, tmp_path, 2)
    drawn = stock_batches(stock, batches, warmup=1)
    assert len(drawn) == 2 and set(drawn[0]) == {"input_ids", "attention_mask", "labels"}
    for ours, theirs in zip(batches, drawn):  # one batch per group: the same rows, maybe in another order
        key = lambda row: row["input_ids"]  # noqa: E731
        assert sorted(unpadded_rows(ours), key=key) == sorted(unpadded_rows(theirs), key=key)
    # DataCollatorForSeq2Seq pads labels on their own: each summary still ends with EOS as a label (pad == eos).
    for row in unpadded_rows(drawn[0]):
        assert row["labels"][-1] == row["input_ids"][-1] == tokenizer.eos_token_id
    padded = drawn[0]["attention_mask"] == 0
    assert (drawn[0]["labels"][padded] == IGNORE).all()
    assert (drawn[0]["input_ids"][padded] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("method", ["lora", "soft_prompt", "finetune"])
def test_stock_generation_equals_ours(method, tiny_model_dir, fixture_files, tmp_path):
    from benchmarks.stock import generation_path, stock_generate
    from common.generation.generate import generate_local_tokens
    from common.data.prompts import build_prompts

    cfg, tokenizer, splits, model, _, _, _ = bench_parts(method, tiny_model_dir, fixture_files, tmp_path)
    articles = [article[: 30 + 45 * (i % 3)] for i, article in enumerate(list(splits["test"]["article"]) * 2)]
    prompts = build_prompts(tokenizer, articles, cfg.data)[:5]
    assert len(set(map(len, prompts))) == 3  # padded batches, in another order than ours' length-sorted ones
    stock = stock_generate(model, tokenizer, prompts, cfg.generation)
    assert stock == generate_local_tokens(model, tokenizer, prompts, cfg.generation)
    assert len(stock) == 5 and all(stock)
    assert generation_path(model) == ("stock (ours for soft prompt)" if method == "soft_prompt" else "stock")


# benchmarks/data_scaling.py and benchmarks/length_scaling.py

def test_synthesized_rows_have_unique_ids_and_real_shapes(tmp_path):
    import pyarrow.parquet as pq

    from benchmarks.data_scaling import COLUMNS, read_rows, synthesize

    real = read_rows(Path(__file__).parents[1] / "data" / "sample" / "train.jsonl")
    path = synthesize(real, 25, tmp_path / "rows.parquet", seed=3)
    table = pq.read_table(path)
    assert table.num_rows == 25 and table.column_names == list(COLUMNS) == ["id", "article", "highlights"]
    ids = table["id"].to_pylist()
    assert len(set(ids)) == 25 and all(len(i) == 40 for i in ids)
    article_lengths = {len(row["article"].split()) for row in real}
    line_counts = {len(row["highlights"].split("\n")) for row in real}
    assert all(len(a.split()) in article_lengths for a in table["article"].to_pylist())
    assert all(len(h.split("\n")) in line_counts for h in table["highlights"].to_pylist())
    vocabulary = {w for row in real for w in (row["article"] + " " + row["highlights"]).split()}
    assert set(" ".join(table["article"].to_pylist()).split()) <= vocabulary
    assert pq.read_table(synthesize(real, 25, tmp_path / "again.parquet", seed=3)).equals(table)  # seeded


@pytest.mark.slow
def test_data_scaling_end_to_end(tmp_path, capsys):
    from benchmarks.data_scaling import main, make_parser

    out = tmp_path / "scaling.json"
    results = main(make_parser().parse_args(["--rows", "100", "200", "--tokenizer", "tiny", "--max_source_length", "64",
                                             "--work_dir", str(tmp_path), "--out", str(out), "--compare"]))
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    first, second = results["measurements"]
    assert (first["rows"], second["rows"], second["tokenized_rows"]) == (100, 200, 200)
    assert second["growth"]["rows"] == 2 and second["tokens"] > first["tokens"]
    assert all(m["peak_mib"] >= m["peak_after_load_mib"] > 0 and m["total_s"] > 0 for m in (first, second))
    assert [m["tokens"] for m in results["whole_text_measurements"]] == [first["tokens"], second["tokens"]]
    assert [(c["rows_compared"], c["rows_differing"]) for c in results["comparison"]] == [(100, 0), (200, 0)]
    assert "row_digests" not in first and "| 200 |" in capsys.readouterr().out


def test_data_scaling_counts_rows_whose_ids_differ():
    from datasets import Dataset

    from benchmarks.data_scaling import compare, row_digests

    rows = {"input_ids": [[1, 2], [3], [4, 5, 6]], "labels": [[-100, 2], [3], [-100, 5, 6]]}
    changed = {"input_ids": [[1, 2], [3], [4, 5, 7]], "labels": [[-100, 2], [-100], [-100, 5, 6]]}
    measured = lambda table: {"rows": 3, "tokenize_s": 1.0, "total_s": 2.0, "peak_mib": 9.0,  # noqa: E731
                              "row_digests": row_digests(Dataset.from_dict(table))}
    assert compare(measured(rows), measured(rows))["rows_differing"] == 0
    assert compare(measured(rows), measured(changed))["rows_differing"] == 2
    assert compare(measured(rows), measured({name: ids[:2] for name, ids in rows.items()}))["rows_differing"] == 1


@pytest.mark.slow
def test_length_scaling_on_the_tiny_model(tmp_path, fixture_files, capsys):
    from benchmarks.length_scaling import main, make_parser

    results = main(make_parser().parse_args([
        "--model", "tiny", "--article_tokens", "8", "24", "--methods", "lora", "soft_prompt", "--steps", "1",
        "--batch_size", "2", "--gen_examples", "2", "--max_new_tokens", "3", "--max_target_length", "6",
        "--data_dir", str(Path(fixture_files["train"]).parent), "--out", str(tmp_path / "lengths.json")]))
    for rows in results["methods"].values():
        assert [r["article_tokens"] for r in rows] == [8, 24]
        assert rows[1]["mean_prompt_tokens"] - rows[0]["mean_prompt_tokens"] == 16  # every article cut at the length
        assert all(r["train_s_per_example"] > 0 and r["gen_prompts"] == 2 for r in rows)
        assert rows[1]["growth"]["article_tokens"] == 3
    assert "| lora | 24 |" in capsys.readouterr().out


def test_profile_step_on_the_tiny_model(tmp_path, fixture_files, capsys):
    """Operators sorted by self time, matmuls a share of it, and --extra reaches the method (LoRA dropout 0.1
    puts bernoulli_ in the step; the default 0 has none)."""
    from benchmarks.profile_step import main, make_parser

    def profile(*extra):
        return main(make_parser().parse_args([
            "--model", "tiny", "--methods", "lora", "--steps", "1", "--warmup", "0", "--batch_size", "2",
            "--train_pool", "4", "--max_source_length", "32", "--max_target_length", "8", "--top", "200",
            "--data_dir", str(Path(fixture_files["train"]).parent), "--out", str(tmp_path / "profile.json"),
            *extra]))["methods"]["lora"]

    dropout, plain = profile("--extra=--lora_dropout 0.1"), profile()
    shares = [row["share"] for row in dropout["top"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1, abs=1e-6)
    assert 0 < dropout["matmul_share"] < 1
    assert "aten::bernoulli_" in {row["op"] for row in dropout["top"]}
    assert "aten::bernoulli_" not in {row["op"] for row in plain["top"]}
    assert json.loads((tmp_path / "profile.json").read_text())["methods"]["lora"]["top"] == plain["top"]
    assert "| operator | s/step | share | calls/step |" in capsys.readouterr().out


def test_generation_curve_on_the_tiny_model(tmp_path, fixture_files):
    from benchmarks.generation_curve import main, make_parser

    result = main(make_parser().parse_args([
        "--model", "tiny", "--gen_examples", "3", "--batch_sizes", "1", "3", "--max_new_tokens", "4",
        "--max_source_length", "32", "--data_dir", str(Path(fixture_files["train"]).parent),
        "--out", str(tmp_path / "curve.json")]))
    assert [row["batch_size"] for row in result["rows"]] == [1, 3] and result["prompts"] == 3
    for row in result["rows"]:
        assert 0 < row["tokens"] <= 12 and row["tokens_per_s"] == row["tokens"] / row["seconds"]
        assert row["prefill_seconds"] > 0 and row["decode_seconds"] == row["seconds"] - row["prefill_seconds"]
    assert json.loads((tmp_path / "curve.json").read_text())["rows"] == result["rows"]


def test_padding_share_of_length_sorted_batches():
    from benchmarks.generation_curve import padding_share

    assert padding_share([[1, 2, 3], [4], [5, 6]], batch_size=2) == pytest.approx(1 / 7)
    assert padding_share([[1, 2, 3], [4], [5, 6]], batch_size=1) == 0
    assert padding_share([[1] * 4, [1]], batch_size=2) == pytest.approx(3 / 8)


def test_quality_presets_differ_only_in_method_and_rate():
    """Equal terms: the eight systems' presets hold the same data, budget, prompt and decoding; what differs is the
    method's own arguments, the learning rate and the output folder."""
    import dataclasses

    from benchmarks.quality_run import CONFIG_DIR, systems
    from common.methods import method_for, variant_settings

    trained = [name for name in systems() if name != "zero_shot"]
    assert trained == ["lora", "dora", "rslora", "soft_prompt", "finetune", "full_finetune", "ia3", "prefix_tuning"]
    shared = {}
    for name in trained:
        preset = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
        own = {f.name for f in dataclasses.fields(method_for(name).arguments)}
        assert {key: preset.get(key, False) for key in variant_settings(name)} == variant_settings(name)
        shared[name] = {k: v for k, v in preset.items() if k not in own | {"output_dir", "learning_rate"}}
        assert preset["output_dir"] == f"runs/quality/{name}"
    assert all(shared[name] == shared["lora"] for name in trained), "a preset differs beyond method and rate"
    assert shared["lora"]["max_train_samples"] == 96 and shared["lora"]["num_beams"] == 4


def test_quality_run_keeps_the_rate_with_the_lowest_final_dev_loss(tmp_path, monkeypatch):
    """Each rate of the grid trains the preset with only the rate changed; the lowest dev loss at the last
    evaluation is kept (selected.json), and the test sets are generated from that run's adapter."""
    from benchmarks import quality_run

    (tmp_path / "rates.yaml").write_text("ia3: [3.0e-3, 1.0e-2, 3.0e-2]\n")
    monkeypatch.setattr(quality_run, "RATES_FILE", tmp_path / "rates.yaml")
    monkeypatch.setattr(quality_run, "RUNS_DIR", quality_run.ROOT / "runs" / "pytest-quality" / tmp_path.name)
    launched = []

    def fake_run(method, config_file, model_path, force, label):
        preset = yaml.safe_load(Path(config_file).read_text())
        launched.append((method, preset["learning_rate"]))
        # dev loss at each evaluation; lowest at the last one: 1e-2 (3e-2 is lowest earlier, not at the end)
        losses = {3e-3: [2.9, 2.5], 1e-2: [2.6, 2.3], 3e-2: [2.2, 2.4]}[preset["learning_rate"]]
        points = [{"step": 0, "rougeLsum": 20.0}] + [{"step": 12 * i, "rougeLsum": 25.0, "dev_loss": loss}
                                                    for i, loss in enumerate(losses, start=1)]
        folder = quality_run.ROOT / preset["output_dir"]
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"method": "ia3", "train_time_s": 60.0,
                                                     "learning_curve": {"points": points}}))

    monkeypatch.setattr(quality_run, "run_preset", fake_run)
    try:
        record = quality_run.train_system("ia3", Path("model"), force=False, label="[1/1] ia3")
        assert launched == [("ia3", 3e-3), ("ia3", 1e-2), ("ia3", 3e-2)]
        assert record["kept_learning_rate"] == 1e-2 and [t["dev_loss"] for t in record["tried"]] == [2.5, 2.3, 2.4]
        kept = f"runs/pytest-quality/{tmp_path.name}/ia3/lr_0.01/adapter"
        assert quality_run.adapter_path("ia3") == kept
        assert quality_run.generation_preset("ia3", "test_cnn", quality_run.RUNS_DIR / "x")["trained_path"] == kept
        assert quality_run.learning_rates("lora") == [3e-4]  # no grid: the preset's own rate
    finally:
        import shutil

        shutil.rmtree(quality_run.ROOT / "runs" / "pytest-quality", ignore_errors=True)


def test_quality_summary_pairs_each_run_with_the_zero_shot_decoded_the_same_way(tmp_path, monkeypatch):
    from benchmarks import quality_summary

    def row(system, method, baseline=False):
        scores = {f"{key}{end}": 30.0 for key in ("rouge1", "rouge2", "rougeLsum") for end in ("", "_ci_low", "_ci_high")}
        return {"system": system, "method": method, "baseline": baseline, **scores, "mean_words_predicted": 40.0,
                "mean_words_reference": 50.0, "cut_at_limit_share": None, "train_wall_time_s": None, "peak_rss_mib": None}

    def pair(a, b, diff):
        return {"a": a, "b": b, "difference": dict.fromkeys(("rouge1", "rouge2", "rougeLsum"), diff),
                "p_value": dict.fromkeys(("rouge1", "rouge2", "rougeLsum"), 0.01)}

    systems = [row("lora", "lora"), row("lora_beams_4", "lora"), row("zero_shot", "zero_shot", True),
               row("zero_shot_beams_4", "zero_shot", True), row("lead3", "lead3", True)]
    pairs = [pair("lora", "zero_shot", 1.0), pair("lora", "lead3", -2.0), pair("zero_shot_beams_4", "lora_beams_4", 3.0),
             pair("lora_beams_4", "lead3", -4.0), pair("lora_beams_4", "lora", 5.0)]
    (tmp_path / "mixed_beams_4").mkdir()
    (tmp_path / "mixed_beams_4" / "comparison.json").write_text(json.dumps(
        {"n_examples": 100, "systems": systems, "pairs": pairs}))
    monkeypatch.setattr(quality_summary, "RESULTS", tmp_path)
    lines = quality_summary.table("mixed_beams_4").splitlines()
    assert lines[-2] == "- lora vs zero_shot: R-1 +1.00 (p=0.010), R-2 +1.00 (p=0.010), R-Lsum +1.00 (p=0.010); " \
                        "vs lead-3: R-1 -2.00 (p=0.010), R-2 -2.00 (p=0.010), R-Lsum -2.00 (p=0.010)"
    assert lines[-1] == "- lora_beams_4 vs zero_shot_beams_4: R-1 -3.00 (p=0.010), R-2 -3.00 (p=0.010), R-Lsum -3.00 " \
                        "(p=0.010); vs lead-3: R-1 -4.00 (p=0.010), R-2 -4.00 (p=0.010), R-Lsum -4.00 (p=0.010); " \
                        "vs lora: R-1 +5.00 (p=0.010), R-2 +5.00 (p=0.010), R-Lsum +5.00 (p=0.010)"


def test_dev_search_row_has_cost_and_only_the_variants_own_training_time():
    from benchmarks.tune_on_dev import summary_row

    run = {"test_rouge": {"rouge1": 30.0}, "test_mean_words": {"predicted": 40.0, "reference": 45.0},
           "examples": {"test": {"used": 40}}, "summaries_cut_share": 0.25, "generation_wall_time_s": 98.0,
           "train_wall_time_s": 600.0}
    assert summary_row("lr_0.3", {"learning_rate": 0.3}, run) == {
        "variant": "lr_0.3", "overrides": {"learning_rate": 0.3}, "rouge": {"rouge1": 30.0},
        "mean_words": {"predicted": 40.0, "reference": 45.0}, "rows": 40, "cut_share": 0.25,
        "generation_s_per_row": 2.45, "train_wall_time_s": 600.0}
    assert "train_wall_time_s" not in summary_row("beams_4", {}, {**run, "generation_only": True})


@pytest.mark.parametrize("name", ["zero_shot_decoding", "lora_decoding", "finetune_decoding", "soft_prompt_decoding"])
def test_shipped_decoding_searches_decode_as_their_variant_names_say(name):
    """Each variant's config file, as tune_on_dev writes it over today's preset (which decodes with 4 beams),
    keeps the decoding its name states: `greedy*` one beam, `beams_4*` four, `*no_repeat_3` blocking."""
    from benchmarks.tune_on_dev import DEV_DIR, ROOT, variant_overrides, variant_yaml

    spec = yaml.safe_load((ROOT / "benchmarks" / "dev_variants" / f"{name}.yaml").read_text())
    base = yaml.safe_load((ROOT / spec["base"]).read_text())
    decodings = {}
    for variant, overrides in variant_overrides(spec).items():
        values = yaml.safe_load(variant_yaml(base, overrides, spec["dev_file"], DEV_DIR / variant))
        decodings[variant] = (values.get("num_beams", 1), values.get("no_repeat_ngram_size", 0))
    expected = {variant: (4 if variant.startswith("beams_4") else 1, 3 if variant.endswith("no_repeat_3") else 0)
                for variant in spec["variants"]}
    assert decodings == expected and {1, 4} <= {beams for beams, _ in decodings.values()}


def test_quality_compare_copies_what_the_comparison_wrote_and_drops_an_older_plot(tmp_path, monkeypatch):
    import evaluate_all
    from benchmarks import quality_run

    def fake_main(argv):  # what evaluate_all writes for runs without a learning curve
        output = quality_run.ROOT / argv[argv.index("--output_dir") + 1]
        output.mkdir(parents=True, exist_ok=True)
        (output / "comparison.json").write_text("{}")
        (output / "comparison.md").write_text("table")
        (output / "peft_results").mkdir()
        (output / "peft_results" / "lora.json").write_text("{}")

    monkeypatch.setattr(evaluate_all, "main", fake_main)
    monkeypatch.setattr(quality_run, "ROOT", tmp_path)
    monkeypatch.setattr(quality_run, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(quality_run, "RESULTS_DIR", tmp_path / "results")
    (tmp_path / "results" / "cnn").mkdir(parents=True)
    (tmp_path / "results" / "cnn" / "learning_curves.png").write_bytes(b"older runs")
    (tmp_path / "results" / "cnn" / "peft_results").mkdir()
    (tmp_path / "results" / "cnn" / "peft_results" / "ia3.json").write_text("older runs")
    quality_run.compare("cnn", ["runs/quality/cnn/lora"])
    assert sorted(path.name for path in (tmp_path / "results" / "cnn").iterdir()) == [
        "comparison.json", "comparison.md", "peft_results"]
    assert [path.name for path in (tmp_path / "results" / "cnn" / "peft_results").iterdir()] == ["lora.json"]


@pytest.mark.parametrize("beams", [1, 3])
def test_generation_only_benchmark_compares_ours_and_stock_on_the_same_prompts(tmp_path, fixture_files, beams):
    """--generation_only: both paths' tokens are compared row for row; greedy adds the decode's bytes and
    bandwidth fraction, counted for ours' batches (`greedy_decode_bytes`)."""
    from benchmarks.benchmark import main, make_parser

    out = tmp_path / "gen.json"
    results = main(make_parser().parse_args([
        "--model", "tiny", "--generation_only", "--methods", "lora", "soft_prompt", "--num_beams", str(beams),
        "--no_repeat_ngram_size", "2", "--gen_examples", "3", "--gen_batch_size", "2", "--max_new_tokens", "5",
        "--max_source_length", "24", "--rounds", "1", "--data_dir", str(Path(fixture_files["train"]).parent),
        "--out", str(out)]))
    assert json.loads(out.read_text())["settings"]["num_beams"] == beams
    for method in ("lora", "soft_prompt"):
        result = results["methods"][method]
        assert result["same_generations"] == "3/3"
        for path in ("ours", "stock"):
            assert result[path]["gen_prompts"] == 3 and result[path]["gen_tokens_per_s"] > 0
            assert result[path]["prefill_seconds"] + result[path]["decode_seconds"] == pytest.approx(
                result[path]["gen_seconds"])
            assert ("bandwidth_fraction" in result[path]) == (beams == 1)
    assert ("read_bandwidth_bytes_per_s" in results) == (beams == 1)


def test_greedy_decode_bytes_count_weights_and_the_cache_of_every_decoding_step():
    """Hand-computed: 2 prompts (3 and 2 tokens) in one batch, 2 and 1 new tokens; the longest row took 2 tokens
    and an EOS, 3 forward passes: the prefill and 2 decoding steps, each reading the weights once and both rows'
    cache over the padded width 3 plus the positions generated so far (1, then 2)."""
    from benchmarks.generation_speed import greedy_decode_bytes, kv_bytes_per_position, weight_bytes_per_step
    from common.models.tiny import build_tiny_model, build_tokenizer

    model = build_tiny_model(len(build_tokenizer()))
    per_position, weights = kv_bytes_per_position(model.config), weight_bytes_per_step(model)
    assert per_position == 2 * 2 * 64 * 4  # 2 layers x (keys + values) x hidden 64 x fp32
    assert weights == sum(p.numel() * 4 for n, p in model.named_parameters() if not n.endswith("wpe.weight"))
    total = greedy_decode_bytes(model, [[1, 2, 3], [4, 5]], [[7, 8], [9]], batch_size=2)
    assert total == 2 * weights + 2 * (3 + 1) * per_position + 2 * (3 + 2) * per_position
