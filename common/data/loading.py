"""Loading, validating and subsetting the article/summary splits.

Each split comes from a local file when its flag is given, else from the Hub dataset. Rows are
normalised to three string columns, `id`, `article`, `summary`.

Values are read as they are written: a CSV cell "NA", "N/A", "null" or "nan" is that text (no
pandas NA coercion), and "01" stays "01". Only a real missing value is missing: an empty CSV cell, a
JSON null or an absent key, a parquet null. Rows whose article or summary is missing, empty or not
text are dropped and counted. Ids:

- no id column (`--id_column` absent from the file): rows are numbered `<split>-<row>`;
- an id column: every kept row needs an id, text or an integer (1 and "1" are the same id), and no
  id may repeat; otherwise a DataError names the file, the rows and the fix. Ids pair each test
  prediction with its reference, so they are never made up for a row whose id is blank.

Errors name rows as a user finds them: `line N` in JSON Lines and CSV files (1-based, the file's
own line), `record N` in a JSON list and `row N` in parquet (1-based), `index N` in a Hub split
(`dataset[N]`).

Parquet files and Hub splits stay in Arrow (`ArrowRows`): the rows to keep are found with Arrow's
vectorised string kernels (its whitespace trim is Python's `str.strip`, checked on every code point), and
only the id column becomes Python values, so memory grows with the text itself, not with a pandas copy
of it (benchmarks/data_scaling.py). JSON and CSV files, whose errors name lines, are read with pandas.

Example (a train file of three rows, one of them without a summary):
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     train = Path(tmp, "train.jsonl")
    ...     rows = [{"id": "a", "article": "Rain fell on Paris.", "highlights": "Rain."},
    ...             {"id": "b", "article": "The cat sat.", "highlights": ""},
    ...             {"id": "c", "article": "Snow fell.", "highlights": "Snow."}]
    ...     _ = train.write_text("".join(json.dumps(row) + "\\n" for row in rows))
    ...     splits, counts = load_splits(DataArguments(train_file=str(train)), splits=("train",))
    >>> splits["train"].column_names, list(splits["train"]["id"])
    (['id', 'article', 'summary'], ['a', 'c'])
    >>> {key: counts["train"][key] for key in ("rows", "dropped_invalid", "used")}
    {'rows': 3, 'dropped_invalid': 1, 'used': 2}
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from ..config.arguments import DATA_FILE_SUFFIXES, DataArguments
from ..core.cli import DataError
from ..core.hub_access import LOCAL_PATH_HINT, HubUnreachableError, hub_reachable, require_hub

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FILE_FLAGS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
LIMIT_FLAGS = {"train": "max_train_samples", "validation": "max_eval_samples", "test": "max_test_samples"}
SUFFIXES = DATA_FILE_SUFFIXES  # one list: checked when flags are parsed and again when a file is read
SHOWN = 3  # bad rows or ids named in one error message


@dataclass(frozen=True)
class ArrowRows:
    """A split's raw rows as an Arrow table (parquet, Hub) and how a user names its rows: `row` (1-based,
    parquet) or `index` (0-based, a Hub split's `dataset[N]`)."""

    table: pa.Table
    unit: str
    origin: str  # what identifies the rows' content: the file's path, size and time; the Hub split's fingerprint

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    def row_names(self, positions: list[int]) -> list[str]:
        first = 1 if self.unit == "row" else 0
        return [f"{self.unit} {p + first}" for p in positions]


def read_table(path: str, flag: str) -> pd.DataFrame | ArrowRows:
    """Read a .jsonl/.json/.csv file into a DataFrame of raw values, with no NA coercion, or a .parquet
    file into `ArrowRows` (Arrow's own types: ints stay ints next to nulls).

    The index numbers the rows as the file does, its name saying in what: `line` (JSON Lines: the
    file's 1-based line), `record` (a JSON list), `row` (CSV or parquet data rows, 1-based).
    Raises a DataError naming the file and flag for an unknown suffix, a missing, empty or
    unreadable file, or a JSON value that is not an object (with its line or record).
    """
    where = f"--{flag} {path}"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{where}: unknown file type '{suffix}'; use one of {', '.join(SUFFIXES)}")
    if not Path(path).is_file():
        raise DataError(f"{where}: no such file")
    if Path(path).stat().st_size == 0:
        raise DataError(f"{where}: the file is empty")
    try:
        if suffix == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            stat = Path(path).stat()
            return ArrowRows(pq.read_table(path), unit="row",
                             origin=f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
        else:
            return _read_json_records(path, where, suffix)
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: the file is empty (no header, no rows)") from None
    except DataError:
        raise
    except (ValueError, OSError, pd.errors.ParserError, pa.ArrowException) as error:
        raise DataError(f"{where}: cannot read it as {suffix}: {error}") from error
    table.index = pd.RangeIndex(1, len(table) + 1, name="row")
    return table


def _read_json_records(path: str, where: str, suffix: str) -> pd.DataFrame:
    """A JSON list of objects, or JSON Lines (one object per line; blank lines are skipped)."""
    text = Path(path).read_text(encoding="utf-8-sig")  # a BOM is not JSON
    if not text.strip():
        raise DataError(f"{where}: the file is empty (only blank lines)")
    document = _json_list(text, where, strict=suffix == ".json")
    if document is not None:
        unit, numbers, records = "record", list(range(1, len(document) + 1)), document
    else:
        unit, (numbers, records) = "line", _json_lines(text, where)
    for number, record in zip(numbers, records):
        if not isinstance(record, dict):
            raise DataError(f"{where}: {unit} {number} holds a JSON {_json_kind(record)}, not an object; each "
                            f"{unit} must be one object with the article and summary fields")
    return pd.DataFrame(records, index=pd.Index(numbers, name=unit), dtype=object)


def _json_list(text: str, where: str, strict: bool) -> list | None:
    """The records of a file holding one JSON list, or None to read it as JSON Lines: when it does
    not start with '[', or (not strict, for .jsonl) is not a valid list of objects."""
    if not text.lstrip().startswith("["):
        return None
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        if not strict:
            return None
        raise DataError(f"{where}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if not strict and not all(isinstance(record, dict) for record in records):
        return None
    if not records:
        raise DataError(f"{where}: the JSON list is empty (no records)")
    return records


def _json_lines(text: str, where: str) -> tuple[list[int], list]:
    """The 1-based line numbers and values of the non-blank lines. Split on '\\n' only: str.splitlines
    would also break inside strings at U+2028 or U+0085, which JSON allows unescaped."""
    numbers, values = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: line {number} is not valid JSON ({error.msg} at column {error.colno}); "
                            "each line must hold one JSON object") from None
        numbers.append(number)
    return numbers, values


def _json_kind(value) -> str:
    kinds = ((list, "list"), (str, "string"), (bool, "boolean"), ((int, float), "number"), (type(None), "null"))
    return next(name for kind, name in kinds if isinstance(value, kind))


def normalise_table(table: pd.DataFrame | ArrowRows, data_args: DataArguments, source: str, split: str,
                    path: str | None = None) -> tuple[Dataset, int]:
    """Keep `id`, `article`, `summary` as strings; drop and count rows that are not usable text.

    Returns the cleaned Dataset and the number of dropped rows. A DataError names `source` and the
    fix for a missing column (with the columns it has and the flag that maps them), and names the
    rows (see the module doc; `path`, the file behind `source`, gives CSV line numbers) for a kept
    row without a usable id or a repeated id.
    """
    wanted = {"article_column": data_args.article_column, "summary_column": data_args.summary_column}
    for flag, column in wanted.items():
        if column not in table.columns:
            raise DataError(f"{source}: no column '{column}' (columns: {list(map(str, table.columns))}); "
                            f"set --{flag} to the column holding the {flag.split('_')[0]}")
    if isinstance(table, ArrowRows):
        return _normalise_arrow(table, data_args, source, split)
    articles = table[data_args.article_column].tolist()
    summaries = table[data_args.summary_column].tolist()
    keep = [row for row in range(len(table)) if _is_text(articles[row]) and _is_text(summaries[row])]
    ids = table[data_args.id_column].tolist() if data_args.id_column in table.columns else None
    columns = {
        "id": _kept_ids(ids, keep, data_args.id_column, source, split,
                        lambda positions: _row_names(table, positions, path)),
        "article": [articles[row].strip() for row in keep],
        "summary": [summaries[row].strip() for row in keep],
    }
    return Dataset.from_dict(columns), len(table) - len(keep)


def _normalise_arrow(rows: ArrowRows, data_args: DataArguments, source: str, split: str) -> tuple[Dataset, int]:
    """`normalise_table` in Arrow: trim both text columns, keep the rows where both are non-empty text."""
    article = _trimmed_text(rows.table.column(data_args.article_column))
    summary = _trimmed_text(rows.table.column(data_args.summary_column))
    usable = pc.and_(pc.greater(pc.utf8_length(article), 0), pc.greater(pc.utf8_length(summary), 0))
    usable = pc.fill_null(usable, False)
    keep = np.flatnonzero(usable.to_numpy(zero_copy_only=False)).tolist()
    ids = rows.table.column(data_args.id_column).to_pylist() if data_args.id_column in rows.columns else None
    kept_ids = _kept_ids(ids, keep, data_args.id_column, source, split, rows.row_names)
    if len(keep) < len(rows):  # else no copy: every row is kept as trimmed
        article, summary = article.filter(usable), summary.filter(usable)
    table = pa.table({"id": pa.array(kept_ids, type=pa.string()), "article": article, "summary": summary})
    # Given a fingerprint, `datasets` does not hash the whole table to make one (a full serialised copy).
    key = (rows.origin, data_args.article_column, data_args.summary_column, data_args.id_column, split)
    return Dataset(table, fingerprint=hashlib.sha256(repr(key).encode()).hexdigest()[:16]), len(rows) - len(keep)


def _trimmed_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A string column with surrounding whitespace removed; any other type is all null (no row is text)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.utf8_trim_whitespace(column)
    if pa.types.is_string_view(column.type):
        return pc.utf8_trim_whitespace(column.cast(pa.large_string()))
    return pa.chunked_array([pa.nulls(len(column), pa.string())])


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _as_id(value) -> str | None:
    """The id as text: a non-blank string as it is, an integer in decimal; None for anything else."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    return None


def _kept_ids(values: list | None, keep: list[int], column: str, source: str, split: str,
              row_names) -> list[str]:
    """The ids of the kept rows: `split-<row>` without an id column (`values` None); else the column's,
    checked. `row_names(positions)` names rows (0-based positions) as the user finds them."""
    if values is None:
        return [f"{split}-{row}" for row in keep]
    ids = {row: _as_id(values[row]) for row in keep}
    bad = [row for row in keep if ids[row] is None]
    if bad:
        names = row_names(bad[:SHOWN])
        problems = ", ".join(f"{name} ({_id_problem(values[row])})" for name, row in zip(names, bad))
        raise DataError(f"{source}: {len(bad)} row(s) with an article and summary have no usable '{column}': "
                        f"{problems}; give every row an id (text or an integer), or set --id_column to a column "
                        f"that does (without an id column, rows are numbered {split}-0, {split}-1, ...)")
    rows_of = defaultdict(list)
    for row in keep:
        rows_of[ids[row]].append(row)
    repeated = [(key, rows) for key, rows in rows_of.items() if len(rows) > 1]
    if repeated:
        shown = "; ".join(f"'{key}' at {' and '.join(row_names(rows[:SHOWN]))}"
                          + (f" (+{len(rows) - SHOWN} more)" if len(rows) > SHOWN else "")
                          for key, rows in repeated[:SHOWN])
        raise DataError(f"{source}: {len(repeated)} id(s) repeated in column '{column}' (ids are compared as "
                        f"text, so 1 and \"1\" are the same): {shown}; make the ids unique, as they pair each "
                        "prediction with its reference")
    return [ids[row] for row in keep]


def _id_problem(value) -> str:
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return "blank"
    return f"{value!r} is a {type(value).__name__}, not text or an integer"


def _row_names(table: pd.DataFrame, positions: list[int], path: str | None = None) -> list[str]:
    """How a user finds each row (0-based positions in `table`) in its source; see the module doc."""
    unit = table.index.name
    if unit == "row" and path is not None and Path(path).suffix.lower() == ".csv":
        lines = _csv_row_lines(path)
        if lines is not None and len(lines) == len(table):
            return [f"line {lines[p]}" for p in positions]
    if unit in ("line", "record", "row"):
        return [f"{unit} {table.index[p]}" for p in positions]
    return [f"index {p}" for p in positions]


def _csv_row_lines(path: str) -> list[int] | None:
    """The 1-based line on which each CSV data row starts (a quoted field may span lines); None if the
    csv module cannot read the file. Only read when an error names rows, so big files are read once."""
    limit = csv.field_size_limit(2**31 - 1)  # an article may be longer than the default 128 KiB
    try:
        starts, line = [], 1
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for record in reader:
                if record:  # pandas skips blank lines too
                    starts.append(line)
                line = reader.line_num + 1
        return starts[1:]  # the first is the header
    except (csv.Error, OSError, UnicodeDecodeError):
        return None
    finally:
        csv.field_size_limit(limit)


def load_split_table(split: str, data_args: DataArguments) -> tuple[pd.DataFrame | ArrowRows, str]:
    """The raw table of one split and a description of where it came from."""
    path = getattr(data_args, FILE_FLAGS[split])
    if path is not None:
        return read_table(path, FILE_FLAGS[split]), f"--{FILE_FLAGS[split]} {path}"
    return _load_hub_split(split, data_args), f"{data_args.dataset_name}[{split}]"


def _load_hub_split(split: str, data_args: DataArguments) -> ArrowRows:
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
    return ArrowRows(dataset.flatten_indices().data.table if dataset._indices is not None else dataset.data.table,
                     unit="index", origin=dataset._fingerprint)  # the cached, memory-mapped Arrow table: no copy


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
        cleaned, dropped = normalise_table(table, data_args, source, split, getattr(data_args, FILE_FLAGS[split]))
        if dropped:
            logger.warning("%s: dropped %d of %d rows with a missing, empty or non-text article or summary",
                           source, dropped, len(table))
        if len(cleaned) == 0:
            raise DataError(f"{source}: no usable rows (of {len(table)}, {dropped} had a missing or empty "
                             f"'{data_args.article_column}' or '{data_args.summary_column}')")
        limit = getattr(data_args, LIMIT_FLAGS[split])
        datasets[split] = select_subset(cleaned, limit, data_args.selection_seed)
        counts[split] = {"source": source, "rows": len(table), "dropped_invalid": dropped,
                         "used": len(datasets[split])}
    return DatasetDict(datasets), counts
