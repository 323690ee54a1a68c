"""Loading, validating and subsetting the article/summary splits.

Each split comes from a local file when its flag is given, else from the Hub dataset. Rows are
normalised to three string columns, `id`, `article`, `summary`; rows whose article or summary is
missing, empty or not text are dropped and counted.

Example:
    >>> splits, counts = load_splits(cfg.data)
    >>> splits["train"].column_names
    ['id', 'article', 'summary']
    >>> counts["train"]
    {'rows': 100, 'dropped_invalid': 2, 'used': 98}
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import pandas as pd
from datasets import Dataset, DatasetDict

from .config import DataArguments
from .hub import LOCAL_PATH_HINT, HubUnreachableError, hub_reachable, require_hub

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FILE_FLAGS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
LIMIT_FLAGS = {"train": "max_train_samples", "validation": "max_eval_samples", "test": "max_test_samples"}
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_table(path: str, flag: str) -> pd.DataFrame:
    """Read a .jsonl/.json/.csv/.parquet file into a DataFrame of raw values.

    Raises a ValueError naming the file and flag for an unknown suffix or an unreadable file.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"--{flag} {path}: unknown file type '{suffix}'; use one of {', '.join(SUFFIXES)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{flag} {path}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=object, keep_default_na=True)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        return _read_json_records(path)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise ValueError(f"--{flag} {path}: cannot read it as {suffix}: {error}") from error


def _read_json_records(path: str) -> pd.DataFrame:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return pd.DataFrame.from_records(records)


def normalise_table(table: pd.DataFrame, data_args: DataArguments, source: str, split: str) -> tuple[Dataset, int]:
    """Keep `id`, `article`, `summary` as strings; drop and count rows that are not usable text.

    Returns the cleaned Dataset and the number of dropped rows. A missing column raises a ValueError
    naming `source`, the columns it has and the flag that maps them.
    """
    wanted = {"article_column": data_args.article_column, "summary_column": data_args.summary_column}
    for flag, column in wanted.items():
        if column not in table.columns:
            raise ValueError(f"{source}: no column '{column}' (columns: {list(map(str, table.columns))}); "
                             f"set --{flag} to the column holding the {flag.split('_')[0]}")
    articles = table[data_args.article_column].tolist()
    summaries = table[data_args.summary_column].tolist()
    if data_args.id_column in table.columns:
        ids = [_as_id(value, f"{split}-{row}") for row, value in enumerate(table[data_args.id_column].tolist())]
    else:
        ids = [f"{split}-{row}" for row in range(len(table))]
    keep = [row for row in range(len(table)) if _is_text(articles[row]) and _is_text(summaries[row])]
    columns = {
        "id": [ids[row] for row in keep],
        "article": [articles[row].strip() for row in keep],
        "summary": [summaries[row].strip() for row in keep],
    }
    return Dataset.from_dict(columns), len(table) - len(keep)


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _as_id(value, fallback: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return fallback
    return str(value)


def load_split_table(split: str, data_args: DataArguments) -> tuple[pd.DataFrame, str]:
    """The raw table of one split and a description of where it came from."""
    path = getattr(data_args, FILE_FLAGS[split])
    if path is not None:
        return read_table(path, FILE_FLAGS[split]), f"--{FILE_FLAGS[split]} {path}"
    return _load_hub_split(split, data_args), f"{data_args.dataset_name}[{split}]"


def _load_hub_split(split: str, data_args: DataArguments) -> pd.DataFrame:
    """One split of `--dataset_name` from the Hub, or from the local cache when the Hub cannot answer.

    `datasets` falls back to its cache by itself, but only after retrying the Hub for about 25 s per
    file; when the endpoint does not answer at all, the cache is asked directly instead.
    """
    from datasets import load_dataset

    what = f"The {split} split of dataset '{data_args.dataset_name}' ({data_args.dataset_config})"
    online = hub_reachable()
    try:
        with contextlib.nullcontext() if online else _datasets_cache_only():
            dataset = load_dataset(data_args.dataset_name, data_args.dataset_config, split=split)
    except (ConnectionError, FileNotFoundError) as error:
        if online:
            raise HubUnreachableError(f"{what} could not be loaded: {error}. {LOCAL_PATH_HINT}") from error
        require_hub(f"{what} (not in the local cache)")
        raise
    return dataset.to_pandas()


@contextlib.contextmanager
def _datasets_cache_only():
    """`datasets` in offline mode for one call: it then loads the newest cached copy, or raises at once."""
    import datasets

    previous = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = previous


def select_subset(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    """A seeded random subset of `limit` rows (all rows, in file order, when limit is None or >= len)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit))


def load_splits(data_args: DataArguments, splits: tuple[str, ...] = SPLITS) -> tuple[DatasetDict, dict]:
    """Load, clean and subset each split; return the datasets and per-split row counts."""
    datasets, counts = {}, {}
    for split in splits:
        table, source = load_split_table(split, data_args)
        cleaned, dropped = normalise_table(table, data_args, source, split)
        if dropped:
            logger.warning("%s: dropped %d of %d rows with a missing, empty or non-text article or summary",
                           source, dropped, len(table))
        if len(cleaned) == 0:
            raise ValueError(f"{source}: no usable rows (of {len(table)}, {dropped} had a missing or empty "
                             f"'{data_args.article_column}' or '{data_args.summary_column}')")
        limit = getattr(data_args, LIMIT_FLAGS[split])
        datasets[split] = select_subset(cleaned, limit, data_args.selection_seed)
        counts[split] = {"source": source, "rows": len(table), "dropped_invalid": dropped,
                         "used": len(datasets[split])}
    return DatasetDict(datasets), counts
