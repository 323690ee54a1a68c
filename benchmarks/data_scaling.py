"""Cost of data preparation as the training set grows: wall time and peak memory of loading and tokenizing
N rows, done as the training scripts do it.

    HF_HUB_OFFLINE=1 python benchmarks/data_scaling.py --rows 21000 287113          # seed size, full CNN/DM train
    HF_HUB_OFFLINE=1 python benchmarks/data_scaling.py --rows 21000 287113 --compare   # and against whole texts
    HF_HUB_OFFLINE=1 python benchmarks/data_scaling.py --rows 200 400 --tokenizer tiny   # smoke test

For each N, a parquet file of N CNN/DailyMail-shaped rows is synthesized (`synthesize`): each row copies the
word counts of a real row (the article's, and each highlight line's) drawn at random from
`../shared/data/cnn_dailymail/validation.jsonl` when present, else from the bundled data/sample, and fills
them with words drawn from all those rows' words (so tokens per word stay those of real text); ids are unique.
Then a fresh child process (so that peaks do not mix) prepares it as a training script does:
`common.data.loading.load_splits` with `--train_file` the parquet, then `common.data.prompts.tokenize_for_training`
with the chosen tokenizer. The child reports wall time of each stage and its resident memory: before any
data, the peak after loading, the peak after tokenizing (VmHWM). The table gives each N's growth over the
first N; memory growth is counted above the child's own baseline (Python, torch, transformers, the tokenizer).

`--compare` also prepares each N as it was done before issue 24 (`tokenize_whole_texts`: whole articles and
summaries tokenized, examples converted from lists by `datasets`), in a child of its own, and compares the two
on every row: a digest of each row's `input_ids` and `labels` from each child, the rows whose digests differ
counted. The results then hold those measurements too (`whole_text_measurements`) and a `comparison` per N.

The tokenizer (`--tokenizer`): the offline SmolLM2 folder (49,152 ids, the benchmark's GPT-Neo-125M stand-in)
when it is prepared, else the tiny model's byte-level BPE (512 ids: about 3x the tokens per word, so
tokenizing costs more than with a real vocabulary); or a tokenizer folder.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = ("id", "article", "highlights")
CHUNK_ROWS = 10_000  # rows synthesized and written per parquet row group


def default_source(root: Path = ROOT) -> Path:
    """The real rows whose shapes and words are sampled: the shared validation split when present, else the
    bundled sample's train split."""
    shared = root.parent / "shared" / "data" / "cnn_dailymail" / "validation.jsonl"
    return shared if shared.is_file() else root / "data" / "sample" / "train.jsonl"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Data preparation (load_splits + tokenize_for_training) wall time "
                                     "and peak memory against the number of training rows.")
    parser.add_argument("--rows", type=int, nargs="+", default=[21_000, 287_113], help="Training rows to prepare, "
                        "one synthesized parquet each (seed subset: 21,000; full CNN/DailyMail train: 287,113).")
    parser.add_argument("--source", default=str(default_source()), help="JSON Lines of real rows (article, "
                        "highlights) whose lengths and words are sampled (default: %(default)s).")
    parser.add_argument("--tokenizer", default="auto", help="'offline' (the SmolLM2 folder, python -m "
                        "common.offline_model), 'tiny' (common.tiny_model's tokenizer), 'auto' (offline when "
                        "prepared, else tiny) or a tokenizer folder.")
    parser.add_argument("--max_train_samples", type=int, default=None, help="As the training flag: a seeded "
                        "subset is tokenized (the presets use 21,000); default all rows.")
    parser.add_argument("--max_source_length", type=int, default=512, help="Article tokens kept (seed: 512).")
    parser.add_argument("--max_target_length", type=int, default=128, help="Summary tokens kept (seed: 128).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthesized rows.")
    parser.add_argument("--work_dir", default=None, help="Where the parquet files go (default: a temporary "
                        "folder, removed at the end).")
    parser.add_argument("--compare", action="store_true", help="Also prepare each N with whole texts tokenized, "
                        "as before issue 24, in its own child; compare time, peak memory and every row's ids.")
    parser.add_argument("--out", default=None, help="Also write the results as JSON here.")
    return parser


def main(args: argparse.Namespace) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    real = read_rows(Path(args.source))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        tokenizer = resolve_tokenizer(args.tokenizer, Path(tmp))
        measurements, whole, comparison = [], [], []
        for rows in args.rows:
            path = synthesize(real, rows, work / f"train-{rows}.parquet", seed=args.seed)
            measurements.append(measure(path, tokenizer, args, "cut"))
            if args.compare:
                whole.append(measure(path, tokenizer, args, "whole"))
                comparison.append(compare(whole[-1], measurements[-1]))
            print(f"{rows} rows: {json.dumps(measurements[-1])}", flush=True)
    results = {"source": args.source, "tokenizer": tokenizer, "settings": vars(args),
               "measurements": with_growth(measurements)}
    if args.compare:
        results.update(whole_text_measurements=with_growth(whole), comparison=comparison)
    print_table(results)
    if args.out:
        from common.core.atomic import write_json

        write_json(Path(args.out), results)
    return results


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def synthesize(real: list[dict], rows: int, path: Path, seed: int = 0) -> Path:
    """Write `rows` CNN/DailyMail-shaped rows (id, article, highlights) to a parquet file.

    Each row takes the word counts of a random real row (article; each "\\n"-separated highlight line) and
    fills them with words drawn from all real rows' words; ids are the SHA-1 hex of "synthetic-<seed>-<i>",
    40 characters like CNN/DailyMail's. Written in row groups of CHUNK_ROWS, so memory stays small.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    words = np.array([w for row in real for text in (row["article"], row["highlights"]) for w in text.split()],
                     dtype=object)
    shapes = [(len(row["article"].split()), [len(line.split()) for line in row["highlights"].split("\n")])
              for row in real]
    text = lambda count: " ".join(words[rng.integers(0, len(words), count)])  # noqa: E731
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            picked = [shapes[i] for i in rng.integers(0, len(shapes), min(CHUNK_ROWS, rows - start))]
            chunk = {"id": [hashlib.sha1(f"synthetic-{seed}-{start + i}".encode()).hexdigest()
                            for i in range(len(picked))],
                     "article": [text(article) for article, _ in picked],
                     "highlights": ["\n".join(text(n) for n in lines) for _, lines in picked]}
            writer.write_table(pa.table(chunk, schema=schema))
    return path


def resolve_tokenizer(choice: str, tmp: Path) -> str:
    """The tokenizer folder for --tokenizer (see make_parser)."""
    from common.models.offline import default_cache_dir

    offline = default_cache_dir()
    if choice == "offline" or (choice == "auto" and (offline / "tokenizer.json").is_file()):
        if not (offline / "tokenizer.json").is_file():
            raise SystemExit(f"error: --tokenizer offline: no tokenizer in {offline}; "
                             "run python -m common.offline_model")
        return str(offline)
    if choice in ("tiny", "auto"):
        from common.models.tiny import build_tokenizer

        folder = tmp / "tiny-tokenizer"
        build_tokenizer().save_pretrained(folder)
        return str(folder)
    return choice


def measure(path: Path, tokenizer: str, args: argparse.Namespace, texts: str = "cut") -> dict:
    """`prepare` in a fresh spawned process, so that its peak memory is this N's alone."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(prepare, str(path), tokenizer, args.max_train_samples, args.max_source_length,
                           args.max_target_length, texts, args.compare).result()


def prepare(path: str, tokenizer_dir: str, max_train_samples: int | None, max_source_length: int,
            max_target_length: int, texts: str = "cut", digests: bool = False) -> dict:
    """Load and tokenize the train split as a training script does (`texts="cut"`) or as it was done before
    issue 24 (`"whole"`); wall times and resident memory (MiB), and with `digests` each row's digest."""
    import datasets

    from common.config.arguments import DataArguments, ModelArguments
    from common.data.loading import load_splits
    from common.models.loading import load_tokenizer
    from common.data.prompts import tokenize_for_training

    datasets.disable_progress_bars()
    tokenize = {"cut": tokenize_for_training, "whole": tokenize_whole_texts}[texts]
    tokenizer = load_tokenizer(ModelArguments(model_name_or_path=tokenizer_dir))
    data = DataArguments(train_file=path, max_train_samples=max_train_samples,
                         max_source_length=max_source_length, max_target_length=max_target_length)
    before = memory_mib("VmRSS:")
    start = time.perf_counter()
    splits, counts = load_splits(data, splits=("train",))
    loaded, load_peak = time.perf_counter(), memory_mib("VmHWM:")
    tokenized = tokenize(splits["train"], tokenizer, data)
    end = time.perf_counter()
    result = {"rows": counts["train"]["rows"], "tokenized_rows": len(tokenized),
              "tokens": int(sum(tokenized["length"])), "file_mib": Path(path).stat().st_size / 2**20,
              "load_s": loaded - start, "tokenize_s": end - loaded, "total_s": end - start,
              "rss_before_mib": before, "peak_after_load_mib": load_peak, "peak_mib": memory_mib("VmHWM:")}
    return {**result, "row_digests": row_digests(tokenized)} if digests else result


def tokenize_whole_texts(dataset, tokenizer, data_args):
    """`tokenize_for_training` as it was before issue 24, to time against and to compare ids with: whole
    articles and summaries tokenized, examples built as lists and converted to Arrow by `datasets`."""
    from common.data.prompts import build_prompt_ids, make_prompt_parts, mask_prompt

    parts = make_prompt_parts(tokenizer, data_args)

    def encode_batch(batch):
        articles = tokenizer(list(batch["article"]), add_special_tokens=False)["input_ids"]
        summaries = tokenizer(batch["summary"], add_special_tokens=False)["input_ids"]
        examples = [mask_prompt(build_prompt_ids(a, parts, data_args.max_source_length), s,
                                tokenizer.eos_token_id, data_args.max_target_length)
                    for a, s in zip(articles, summaries)]
        return {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples],
                "length": [len(e["input_ids"]) for e in examples]}

    return dataset.map(encode_batch, batched=True, remove_columns=dataset.column_names, desc="Tokenizing")


def row_digests(tokenized) -> np.ndarray:
    """One 64-bit digest per row of its `input_ids` and `labels` (values and types), read from the Arrow
    buffers without copying the columns."""
    digests = []
    for batch in tokenized.data.table.select(["input_ids", "labels"]).to_batches():
        columns = [(str(column.type), column.offsets.to_numpy(), column.values.to_numpy()) for column in batch.columns]
        for row in range(batch.num_rows):
            digest = hashlib.blake2b(digest_size=8)
            for kind, offsets, values in columns:
                digest.update(kind.encode() + values[offsets[row]:offsets[row + 1]].tobytes())
            digests.append(int.from_bytes(digest.digest(), "little"))
    return np.array(digests, dtype=np.uint64)


def compare(whole: dict, cut: dict) -> dict:
    """The whole-text and cut preparations of one N: speedups, peaks, and the rows whose ids differ (a row
    missing from one side counts as differing). Takes the digests out of both measurements."""
    before, after = whole.pop("row_digests"), cut.pop("row_digests")
    common = min(len(before), len(after))
    differing = np.count_nonzero(before[:common] != after[:common]) + abs(len(before) - len(after))
    return {"rows": cut["rows"], "rows_compared": max(len(before), len(after)), "rows_differing": int(differing),
            "tokenize_speedup": whole["tokenize_s"] / cut["tokenize_s"],
            "total_speedup": whole["total_s"] / cut["total_s"], "whole_total_s": whole["total_s"],
            "total_s": cut["total_s"], "whole_peak_mib": whole["peak_mib"], "peak_mib": cut["peak_mib"]}


def memory_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak) in MiB (0 where there is none)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def with_growth(measurements: list[dict]) -> list[dict]:
    """Each measurement with its growth over the first: rows, time and memory above the child's baseline."""
    first = measurements[0]
    grown = lambda m, key: m[key] / first[key] if first[key] else float("nan")  # noqa: E731
    rows = []
    for m in measurements:
        m = {**m, "data_memory_mib": m["peak_mib"] - m["rss_before_mib"]}
        rows.append({**m, "growth": {"rows": m["rows"] / first["rows"], "total_s": grown(m, "total_s"),
                                     "data_memory": m["data_memory_mib"] / max(first["peak_mib"]
                                                                                - first["rss_before_mib"], 1e-9)}})
    return rows


def print_table(results: dict) -> None:
    print(f"\nData preparation (load_splits + tokenize_for_training), tokenizer {results['tokenizer']}:")
    header = ("rows", "file MiB", "tokens", "load s", "tokenize s", "total s", "peak MiB after load",
              "peak MiB", "data MiB (peak - baseline)", "growth: rows / time / data memory")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for m in results["measurements"]:
        g = m["growth"]
        print(f"| {m['rows']:,} | {m['file_mib']:.1f} | {m['tokens']:,} | {m['load_s']:.2f} | {m['tokenize_s']:.2f} | "
              f"{m['total_s']:.2f} | {m['peak_after_load_mib']:.0f} | {m['peak_mib']:.0f} | "
              f"{m['data_memory_mib']:.0f} | {g['rows']:.1f}x / {g['total_s']:.1f}x / {g['data_memory']:.1f}x |")
    if results.get("comparison"):
        print("\nWhole texts tokenized (before issue 24) against cut texts (now):")
        header = ("rows", "total s whole / cut", "speedup total (tokenize)", "peak MiB whole / cut",
                  "rows compared", "rows differing")
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for c in results["comparison"]:
            print(f"| {c['rows']:,} | {c['whole_total_s']:.2f} / {c['total_s']:.2f} | {c['total_speedup']:.2f}x "
                  f"({c['tokenize_speedup']:.2f}x) | {c['whole_peak_mib']:.0f} / {c['peak_mib']:.0f} | "
                  f"{c['rows_compared']:,} | {c['rows_differing']:,} |")


if __name__ == "__main__":
    main(make_parser().parse_args())
