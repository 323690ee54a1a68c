"""Reaching the Hugging Face Hub for downloads: the local cache first, the Hub only when the cache cannot serve.

Reachability goes through `huggingface_hub` itself, so `HF_ENDPOINT` (a mirror), `HTTPS_PROXY` and
`HF_HUB_OFFLINE` mean what they mean to `from_pretrained` and `load_dataset`. Callers try the local
cache first and ask `require_hub` only when the cache cannot serve, which answers within seconds
instead of the client's own retries (about 25 s per file).

Example:
    >>> is_hub_id("EleutherAI/gpt-neo-125M"), is_hub_id("runs/lora/adapter/x")
    (True, False)
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from .cli import UserError

LOCAL_PATH_HINT = ("Pass local data with --train_file/--validation_file/--test_file (.jsonl, .json, .csv, .parquet) "
                   "and a local model folder with --model_name_or_path (e.g. `python -m common.tiny_model DIR`).")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
REACH_TIMEOUT_S = 10.0


class HubUnreachableError(UserError, RuntimeError):
    """The Hugging Face Hub is needed but cannot be reached (offline mode or no network)."""


def hub_endpoint() -> str:
    """The endpoint huggingface_hub talks to (HF_ENDPOINT, read when it was imported)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_is_offline() -> bool:
    """True when huggingface_hub runs offline, or an offline variable is set now."""
    from huggingface_hub import constants

    now = any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in OFFLINE_VARIABLES)
    return now or constants.HF_HUB_OFFLINE


@functools.lru_cache(maxsize=None)
def _endpoint_answers(endpoint: str, timeout_s: float) -> bool:
    """One HEAD request through huggingface_hub's own HTTP client (its proxies and headers); any
    HTTP answer counts. Name resolution can ignore timeouts, so the request runs in a daemon thread."""
    from huggingface_hub.utils import get_session

    answered = threading.Event()

    def probe():
        try:
            get_session().head(endpoint, timeout=timeout_s)
            answered.set()
        except Exception:  # noqa: BLE001 - any failure to get an HTTP answer means unreachable
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return answered.is_set()


def hub_reachable(timeout_s: float = REACH_TIMEOUT_S) -> bool:
    """False in offline mode or when the endpoint gives no HTTP answer within `timeout_s` (asked once per process)."""
    return not hub_is_offline() and _endpoint_answers(hub_endpoint(), timeout_s)


def require_hub(what: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Raise a HubUnreachableError naming the local-path flags unless `what` can be fetched from the Hub."""
    if hub_is_offline():
        raise HubUnreachableError(f"{what} needs the Hugging Face Hub, but offline mode is set (HF_HUB_OFFLINE=1). "
                                  f"{LOCAL_PATH_HINT}")
    if not hub_reachable(timeout_s):
        raise HubUnreachableError(f"{what} needs the Hugging Face Hub, but {hub_endpoint()} gave no answer within "
                                  f"{timeout_s:.0f} s (HF_ENDPOINT sets a mirror, HTTPS_PROXY a proxy). {LOCAL_PATH_HINT}")


def cache_then_hub(fetch, what: str):
    """`fetch(local_files_only=True)` (the local cache), else `fetch(local_files_only=False)` once the Hub is
    known to answer; `what` names the thing in the error when it cannot (see `require_hub`).

    Example (`fetch` is e.g. `functools.partial(snapshot_download, "me/run")`; offline, as the tests run):
        >>> cache_then_hub(lambda local_files_only: "from the cache", "Trained weights 'me/run'")
        'from the cache'
        >>> def not_cached(local_files_only):
        ...     raise OSError("not in the cache")
        >>> cache_then_hub(not_cached, "Trained weights 'me/run'")
        Traceback (most recent call last):
        common.core.hub_access.HubUnreachableError: Trained weights 'me/run' (not in the local cache) needs the
        Hugging Face Hub, but offline mode is set (HF_HUB_OFFLINE=1). Pass local data ...
    """
    try:
        return fetch(local_files_only=True)
    except (OSError, ValueError):
        pass
    require_hub(f"{what} (not in the local cache)")
    return fetch(local_files_only=False)


def is_hub_id(name: str) -> bool:
    """True for a Hub repo id ('owner/name' or 'name'), False for a local path.

    Example:
        >>> is_hub_id("EleutherAI/gpt-neo-125M"), is_hub_id("/tmp/tiny"), is_hub_id("runs/tiny/model")
        (True, False, False)
    """
    return not os.path.isabs(name) and not Path(name).exists() and name.count("/") <= 1 and not name.startswith(".")
