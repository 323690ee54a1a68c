"""Data loading: each bad-input case gives a clear error or a counted drop."""

import json

import pandas as pd
import pytest

from common import hub as hub_module
from common.config import DataArguments
from common.data import load_splits, read_table, select_subset
from common.hub import HubUnreachableError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def local_args(path, **overrides):
    return DataArguments(train_file=path, validation_file=path, test_file=path, max_train_samples=None,
                         max_eval_samples=None, max_test_samples=None, **overrides)


def test_missing_column_names_file_columns_and_flag(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"id": "1", "text": "A story.", "highlights": "S."}])
    with pytest.raises(ValueError) as error:
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
    with pytest.raises(ValueError, match="no usable rows"):
        load_splits(local_args(path), ("train",))


def test_unknown_file_type(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"--train_file .*t\.txt: unknown file type '\.txt'"):
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
