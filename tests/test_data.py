"""Data loading: each bad-input case gives a clear error or a counted drop."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.core import hub_access as hub_module
from common.core.cli import DataError, run
from common.config.arguments import DataArguments
from common.data.loading import load_splits, normalise_table, read_table, select_subset
from common.core.hub_access import HubUnreachableError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def local_args(path, **overrides):
    return DataArguments(train_file=path, validation_file=path, test_file=path, max_train_samples=None,
                         max_eval_samples=None, max_test_samples=None, **overrides)


def test_missing_column_names_file_columns_and_flag(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"id": "1", "text": "A story.", "highlights": "S."}])
    with pytest.raises(DataError) as error:
        load_splits(local_args(path), ("train",))
    message = str(error.value)
    assert path in message and "'article'" in message and "['id', 'text', 'highlights']" in message
    assert "--article_column" in message


def test_column_mapping_flags(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"story": "A story.", "gold": "S."}])
    splits, _ = load_splits(local_args(path, article_column="story", summary_column="gold"), ("train",))
    assert splits["train"][0] == {"id": "train-0", "article": "A story.", "summary": "S."}


def test_empty_nan_and_non_text_rows_are_dropped_and_counted(tmp_path):
    rows = [{"id": "a", "article": "Good story.", "highlights": "Good."},
            {"id": "b", "article": "", "highlights": "Empty article."},
            {"id": "c", "article": "No summary.", "highlights": None},
            {"id": "d", "article": 42, "highlights": "Number article."},
            {"id": "e", "article": "   ", "highlights": "Blank."},
            {"id": "f", "article": "Second good.", "highlights": "Fine."}]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    splits, counts = load_splits(local_args(path), ("train",))
    assert splits["train"]["id"][:] == ["a", "f"]
    assert counts["train"] == {"source": f"--train_file {path}", "rows": 6, "dropped_invalid": 4, "used": 2}


def test_csv_nan_rows_dropped(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"article": ["A.", None, "C."], "highlights": ["a", "b", float("nan")]}).to_csv(path, index=False)
    splits, counts = load_splits(local_args(str(path)), ("test",))
    assert counts["test"]["dropped_invalid"] == 2 and splits["test"]["article"][:] == ["A."]


def test_parquet_and_json_array(tmp_path):
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"id": ["p"], "article": ["A."], "highlights": ["S."]}).to_parquet(parquet)
    array = tmp_path / "t.json"
    array.write_text(json.dumps([{"id": "j", "article": "B.", "highlights": "T."}]))
    assert load_splits(local_args(str(parquet)), ("train",))[0]["train"]["id"][:] == ["p"]
    assert load_splits(local_args(str(array)), ("train",))[0]["train"]["id"][:] == ["j"]


def test_all_rows_invalid_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"article": "", "highlights": ""}])
    with pytest.raises(DataError, match="no usable rows"):
        load_splits(local_args(path), ("train",))


def test_unknown_file_type(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"--train_file .*t\.txt: unknown file type '\.txt'"):
        read_table(str(path), "train_file")


def test_missing_file_names_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--validation_file .*nope\.jsonl: no such file"):
        DataArguments(validation_file=str(tmp_path / "nope.jsonl"))


def test_hub_unreachable_in_offline_mode_names_local_flags(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError) as error:
        load_splits(DataArguments(), ("train",))
    message = str(error.value)
    assert "not in the local cache" in message and "offline mode" in message
    assert "--train_file" in message and "--model_name_or_path" in message


def test_hub_unreachable_without_offline_flag_names_the_endpoint(monkeypatch):
    """No private socket probe: the endpoint huggingface_hub uses (HF_ENDPOINT) is asked, and a closed port fails."""
    import socket

    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(hub_module, "hub_endpoint", lambda: closed)
    assert not hub_module.hub_reachable(timeout_s=5)
    with pytest.raises(HubUnreachableError, match=f"{closed} gave no answer.*--train_file"):
        hub_module.require_hub("The dataset")


def test_subset_is_seeded_and_deterministic(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"id": str(i), "article": f"A{i}.", "highlights": "S."}
                                              for i in range(20)])
    first, _ = load_splits(local_args(path), ("train",))
    args = DataArguments(train_file=path, max_train_samples=5, selection_seed=3)
    a, b = load_splits(args, ("train",))[0], load_splits(args, ("train",))[0]
    assert a["train"]["id"][:] == b["train"]["id"][:] and len(a["train"]) == 5
    assert select_subset(first["train"], None, 0)["id"][:] == [str(i) for i in range(20)]


# --- values read as written; ids checked; errors name the file and its line, record or row -----------------


def write_file(tmp_path, name: str, content) -> str:
    """`content`: the file's text, or (parquet) a dict of columns written with pyarrow as given."""
    path = tmp_path / name
    if isinstance(content, dict):
        pq.write_table(pa.table(content), path)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


NA_ROWS = [{"id": "NA", "article": "NA", "highlights": "null"}, {"id": "null", "article": "N/A", "highlights": "nan"},
           {"id": "nan", "article": "Third.", "highlights": "NaN"}, {"id": "01", "article": "Fourth.", "highlights": "D."},
           {"id": "1", "article": "Fifth.", "highlights": "E."}]
NA_IDS, NA_ARTICLES = ["NA", "null", "nan", "01", "1"], ["NA", "N/A", "Third.", "Fourth.", "Fifth."]
NA_SUMMARIES = ["null", "nan", "NaN", "D.", "E."]
DROPPED = [{"id": "x", "article": "Dropped: no summary.", "highlights": None},  # a real missing value
           {"id": None, "article": None, "highlights": "Dropped: no article, so its blank id is not checked."}]


@pytest.mark.parametrize("name, content, dropped", [
    ("t.csv", "id,article,highlights\nNA,NA,null\nnull,N/A,nan\nnan,Third.,NaN\n01,Fourth.,D.\n1,Fifth.,E.\n"
              "x,Dropped: empty summary.,\n,,\n", 2),
    ("t.jsonl", "".join(json.dumps(row) + "\n" for row in NA_ROWS + DROPPED), 2),
    ("t.json", json.dumps(NA_ROWS + DROPPED, indent=1), 2),
    ("t.parquet", {key: [row[key] for row in NA_ROWS + DROPPED] for key in ("id", "article", "highlights")}, 2),
])
def test_na_like_text_is_text_and_only_real_missing_values_drop_rows(tmp_path, name, content, dropped):
    """'NA', 'null', 'nan', 'N/A' are text (article, summary or id), '01' and '1' are two ids; an empty
    CSV cell, a JSON null or a parquet null drops the row."""
    path = write_file(tmp_path, name, content)
    splits, counts = load_splits(local_args(path), ("test",))
    assert splits["test"]["id"][:] == NA_IDS
    assert splits["test"]["article"][:] == NA_ARTICLES and splits["test"]["summary"][:] == NA_SUMMARIES
    assert counts["test"] == {"source": f"--test_file {path}", "rows": 5 + dropped, "dropped_invalid": dropped,
                              "used": 5}


@pytest.mark.parametrize("name, content", [
    ("t.jsonl", '{"id": 7, "article": "A.", "highlights": "S."}\n{"id": null, "article": "B.", "highlights": null}\n'
                '{"id": 12345678901234567890, "article": "C.", "highlights": "T."}\n'),
    ("t.parquet", {"id": [7, None, 12345678901234567], "article": ["A.", "B.", "C."], "highlights": ["S.", None, "T."]}),
])
def test_integer_ids_are_written_in_decimal_next_to_nulls(tmp_path, name, content):
    """A null in an integer column must not turn 7 into '7.0' (pandas' float coercion)."""
    splits, _ = load_splits(local_args(write_file(tmp_path, name, content)), ("train",))
    assert splits["train"]["id"][:] == ["7", "12345678901234567890" if name.endswith("l") else "12345678901234567"]


def test_json_lines_split_on_newlines_only(tmp_path):
    """U+2028 and U+0085 may stand unescaped inside a JSON string; str.splitlines would break the line there."""
    row = {"id": "a", "article": "One\u2028two\x85three.", "highlights": "S."}
    path = write_file(tmp_path, "t.jsonl", json.dumps(row, ensure_ascii=False) + "\n")
    assert load_splits(local_args(path), ("train",))[0]["train"]["article"][:] == ["One\u2028two\x85three."]


def test_a_jsonl_file_holding_one_json_list_of_objects_is_still_read(tmp_path):
    path = write_file(tmp_path, "t.jsonl", json.dumps([{"id": "a", "article": "A.", "highlights": "S."}], indent=2))
    assert load_splits(local_args(path), ("train",))[0]["train"]["id"][:] == ["a"]


MULTILINE_CSV = 'id,article,highlights\n1,"Line one\nline two.",S.\n2,B.,T.\n1,C.,U.\n'
DATA_ERRORS = {  # name: (file name, content, message with {path})
    "jsonl bad line": ("t.jsonl", '{"id": "a", "article": "A.", "highlights": "S."}\n\n{"id": "b", bad\n',
                       "--test_file {path}: line 3 is not valid JSON (Expecting property name enclosed in double "
                       "quotes at column 13); each line must hold one JSON object"),
    "jsonl list line": ("t.jsonl", '{"id": "a", "article": "A.", "highlights": "S."}\n[1, 2]\n',
                        "--test_file {path}: line 2 holds a JSON list, not an object; each line must be one object "
                        "with the article and summary fields"),
    "jsonl list first": ("t.jsonl", '[1, 2]\n{"id": "a", "article": "A.", "highlights": "S."}\n',
                         "--test_file {path}: line 1 holds a JSON list, not an object; each line must be one object "
                         "with the article and summary fields"),
    "jsonl empty": ("t.jsonl", "", "--test_file {path}: the file is empty"),
    "jsonl blank lines": ("t.jsonl", "\n  \n", "--test_file {path}: the file is empty (only blank lines)"),
    "json non-objects": ("t.json", '[{"id": "a", "article": "A.", "highlights": "S."}, "text"]',
                         "--test_file {path}: record 2 holds a JSON string, not an object; each record must be one "
                         "object with the article and summary fields"),
    "json bad document": ("t.json", '[{"id": "a", "article": "A.", "highlights": "S."},\n {bad}]',
                          "--test_file {path}: not valid JSON at line 2, column 3: Expecting property name enclosed "
                          "in double quotes"),
    "json empty list": ("t.json", "[]", "--test_file {path}: the JSON list is empty (no records)"),
    "csv empty": ("t.csv", "\n", "--test_file {path}: the file is empty (no header, no rows)"),
    "csv repeated id": ("t.csv", MULTILINE_CSV,
                        "--test_file {path}: 1 id(s) repeated in column 'id' (ids are compared as text, so 1 and "
                        "\"1\" are the same): '1' at line 2 and line 5; make the ids unique, as they pair each "
                        "prediction with its reference"),
    "jsonl 1 and '1'": ("t.jsonl", "".join(json.dumps({"id": key, "article": "A.", "highlights": "S."}) + "\n"
                                           for key in (1, "b", "1", "c", "c", "b", "b", "b")),
                        "--test_file {path}: 3 id(s) repeated in column 'id' (ids are compared as text, so 1 and "
                        "\"1\" are the same): '1' at line 1 and line 3; 'b' at line 2 and line 6 and line 7 (+1 more); "
                        "'c' at line 4 and line 5; make the ids unique, as they pair each prediction with its "
                        "reference"),
    "parquet repeated id": ("t.parquet", {"id": ["p", "q", "p"], "article": ["A.", "B.", "C."],
                                          "highlights": ["S.", "T.", "U."]},
                            "--test_file {path}: 1 id(s) repeated in column 'id' (ids are compared as text, so 1 and "
                            "\"1\" are the same): 'p' at row 1 and row 3; make the ids unique, as they pair each "
                            "prediction with its reference"),
    "csv blank id": ("t.csv", "id,article,highlights\na,A.,S.\n,B.,T.\n  ,C.,U.\n",
                     "--test_file {path}: 2 row(s) with an article and summary have no usable 'id': line 3 (blank), "
                     "line 4 (blank); give every row an id (text or an integer), or set --id_column to a column that "
                     "does (without an id column, rows are numbered test-0, test-1, ...)"),
    "json null and float ids": ("t.json", json.dumps([{"id": None, "article": "A.", "highlights": "S."},
                                                      {"id": 1.5, "article": "B.", "highlights": "T."}]),
                                "--test_file {path}: 2 row(s) with an article and summary have no usable 'id': "
                                "record 1 (blank), record 2 (1.5 is a float, not text or an integer); give every row "
                                "an id (text or an integer), or set --id_column to a column that does (without an id "
                                "column, rows are numbered test-0, test-1, ...)"),
    "missing column": ("t.csv", "id,text,highlights\na,A.,S.\n",
                       "--test_file {path}: no column 'article' (columns: ['id', 'text', 'highlights']); set "
                       "--article_column to the column holding the article"),
    "no usable rows": ("t.csv", "id,article,highlights\na,NA,\nb,,null\n",
                       "--test_file {path}: no usable rows (of 2, 2 had a missing or empty 'article' or "
                       "'highlights')"),
}


@pytest.mark.parametrize("case", DATA_ERRORS)
def test_bad_data_is_a_data_error_naming_file_and_line(tmp_path, case):
    name, content, message = DATA_ERRORS[case]
    path = write_file(tmp_path, name, content)
    with pytest.raises(DataError) as error:
        load_splits(DataArguments(test_file=path, max_test_samples=None), ("test",))
    assert str(error.value) == message.format(path=path)


def test_unreadable_parquet_is_a_data_error(tmp_path):
    path = write_file(tmp_path, "t.parquet", "not parquet")
    with pytest.raises(DataError, match=r"^--train_file .*t\.parquet: cannot read it as \.parquet: "):
        read_table(path, "train_file")


def test_missing_file_is_a_data_error(tmp_path):
    path = str(tmp_path / "gone.csv")
    with pytest.raises(DataError, match=r"^--test_file .*gone\.csv: no such file$"):
        read_table(path, "test_file")


def test_hub_rows_are_named_by_dataset_index():
    table = pd.DataFrame({"id": ["a", "b", "a"], "article": ["A."] * 3, "highlights": ["S."] * 3})
    with pytest.raises(DataError, match=r"^cnn\[test\]: 1 id\(s\) repeated .*: 'a' at index 0 and index 2; "):
        normalise_table(table, DataArguments(), "cnn[test]", "test")


def test_repeated_ids_in_dropped_rows_are_not_checked(tmp_path):
    """Only the rows that are used need ids, unique ones; a dropped row's id pairs nothing."""
    path = write_file(tmp_path, "t.csv", "id,article,highlights\na,A.,S.\na,,dropped\n,B.,\n")
    splits, counts = load_splits(local_args(path), ("test",))
    assert splits["test"]["id"][:] == ["a"] and counts["test"]["dropped_invalid"] == 2


def test_a_data_error_is_one_error_line_and_exit_1(tmp_path, capsys):
    path = write_file(tmp_path, "t.jsonl", '{"id": "a", "article": "A.", "highlights": "S."}\n[1]\n')
    assert run(lambda argv: load_splits(local_args(path), ("train",)), []) == 1
    assert capsys.readouterr().err == (f"error: --train_file {path}: line 2 holds a JSON list, not an object; each "
                                       "line must be one object with the article and summary fields\n")


# --- parquet and Hub splits stay in Arrow ----------------------------------------------------------------------


def test_parquet_is_read_into_arrow_not_pandas(tmp_path):
    from common.data.loading import ArrowRows

    path = write_file(tmp_path, "t.parquet", {"id": ["a"], "article": ["A."], "highlights": ["S."]})
    rows = read_table(path, "train_file")
    assert isinstance(rows, ArrowRows) and rows.unit == "row" and len(rows) == 1
    assert rows.row_names([0, 4]) == ["row 1", "row 5"]


def test_arrow_fingerprint_follows_the_file_and_the_columns(tmp_path):
    """The cleaned split's fingerprint (given, so that `datasets` does not hash the whole table) changes with
    the file's content and with the column flags, and not between two reads of the same file."""
    path = write_file(tmp_path, "t.parquet", {"id": ["a"], "article": ["A."], "highlights": ["S."]})
    first, again = (load_splits(local_args(path), ("train",))[0]["train"]._fingerprint for _ in range(2))
    other_column = load_splits(local_args(path, id_column="none"), ("train",))[0]["train"]._fingerprint
    write_file(tmp_path, "t.parquet", {"id": ["b"], "article": ["Other."], "highlights": ["T."]})
    changed = load_splits(local_args(path), ("train",))[0]["train"]._fingerprint
    assert first == again and len({first, other_column, changed}) == 3


WHITESPACE_ROWS = {"id": ["a", "b", "c", "d", "e"],
                   "article": ["  Kept.\u2003", "\u2003\u00a0\x1c", "Kept too.", "\u3000", " Third.\n"],
                   "highlights": ["\tS. ", "S.", "\u205f", "S.", "T."]}


@pytest.mark.parametrize("name", ["t.parquet", "t.jsonl"])
def test_unicode_whitespace_is_trimmed_and_blank_rows_dropped_alike_in_arrow_and_pandas(tmp_path, name):
    """Arrow's trim and Python's str.strip agree: U+2003, U+00A0, U+001C, U+205F, U+3000 are whitespace."""
    rows = [dict(zip(WHITESPACE_ROWS, values)) for values in zip(*WHITESPACE_ROWS.values())]
    content = WHITESPACE_ROWS if name.endswith("parquet") else "".join(json.dumps(r) + "\n" for r in rows)
    splits, counts = load_splits(local_args(write_file(tmp_path, name, content)), ("train",))
    assert splits["train"][:] == {"id": ["a", "e"], "article": ["Kept.", "Third."], "summary": ["S.", "T."]}
    assert counts["train"]["dropped_invalid"] == 3


def test_dictionary_encoded_and_non_text_arrow_columns(tmp_path):
    """A dictionary-encoded string column is text; an integer 'article' column holds no text (all dropped)."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"article": pa.array(["A.", "B."]).dictionary_encode(), "highlights": ["S.", "T."],
                             "number": [1, 2]}), path)
    splits, _ = load_splits(local_args(str(path)), ("train",))
    assert splits["train"]["article"][:] == ["A.", "B."]
    with pytest.raises(DataError, match=r"no usable rows \(of 2, 2 had a missing or empty 'number'"):
        load_splits(local_args(str(path), article_column="number"), ("train",))


def test_arrow_rows_name_hub_rows_by_index():
    from common.data.loading import ArrowRows

    rows = ArrowRows(pa.table({"id": ["a", "b", "a"], "article": ["A."] * 3, "highlights": ["S."] * 3}), "index",
                     origin="cnn-test")
    with pytest.raises(DataError, match=r"^cnn\[test\]: 1 id\(s\) repeated .*: 'a' at index 0 and index 2; "):
        normalise_table(rows, DataArguments(), "cnn[test]", "test")
