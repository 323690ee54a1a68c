"""A small Hugging Face Hub-compatible HTTP server for tests (standard library only).

`HubServer` serves repos kept as plain file trees (ROOT/models/<owner>/<name>/, ROOT/datasets/<owner>/<name>/)
on 127.0.0.1, answering the part of the Hub's HTTP API that huggingface_hub 2.4, transformers 5.24, datasets 5.2
and peft 0.21 call. Pass `endpoint=server.url` to `HfApi`, or set HF_ENDPOINT=server.url for a subprocess:
huggingface_hub and datasets read HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE at import time.

Endpoints (T: models | datasets | spaces; REV: "main" or the current sha), with the client calls that need them:
  GET  /api/T/OWNER/NAME[/revision/REV]   repo_info: snapshot_download, HfFileSystem (load_dataset), datasets' sha pin
  GET  /api/T/OWNER/NAME/tree/REV[/PATH]  list_repo_tree (?recursive, ?expand): snapshot_download, HfFileSystem.glob,
                                          transformers' additional_chat_templates/ and *.model probes
  POST /api/T/OWNER/NAME/paths-info/REV   get_paths_info (form: paths, expand): HfFileSystem.info
  HEAD|GET /[datasets/]OWNER/NAME/resolve/REV/PATH   hf_hub_download (HEAD: X-Repo-Commit, ETag, Content-Length),
                                          file_exists (peft); GET honours one `Range: bytes=a-b | a- | -n` (206)
  POST /api/repos/create                  create_repo: {url}; 409 {error, url} if it exists (exist_ok reads url)
  POST /api/T/OWNER/NAME/preupload/REV    create_commit / upload_folder: uploadMode "regular" for every file
  POST /api/T/OWNER/NAME/commit/REV       the NDJSON commit (header, base64 file, deletedFile, deletedFolder)
  POST /api/validate-yaml                 create_commit of a README.md; ModelCard.validate / push_to_hub
  GET  /api/whoami-v2                     whoami: a fake user
  GET  /api/agent-harnesses               huggingface_hub's agent detection for its user agent: the empty registry
Why "regular" suffices: preupload_lfs_files sends only the files the server calls "lfs" through Xet or LFS, so
every byte arrives base64 in the commit and no CAS/LFS endpoint is needed. ETags are the git blob sha1, or the
sha256 for LFS-like files (what the Hub sends as X-Linked-Etag). Errors carry the Hub's X-Error-Code (RepoNotFound,
RevisionNotFound, EntryNotFound -> RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError); a
missing file's 404 also carries X-Repo-Commit, so clients cache the miss. Writes and whoami need `Authorization:
Bearer ...` (else 401). Each commit gives the repo a new sha; older shas are RevisionNotFound. Not implemented:
pull requests, LFS/Xet uploads, pagination. `HubServer.requests` logs every request as {method, path, query,
authorization, status, error}.

Example:
    >>> with HubServer() as hub:
    ...     hub.add_repo("EleutherAI/gpt-neo-125M", Path("tiny_model_dir"))
    ...     HfApi(endpoint=hub.url).model_info("EleutherAI/gpt-neo-125M").sha  # 40 hex digits
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# What the Hub's default .gitattributes sends to LFS (abridged), and its size threshold for any other file.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".parquet",
                ".arrow", ".npy", ".npz", ".pkl", ".zip", ".gz", ".tar", ".model")
LFS_MIN_SIZE = 10 * 1024 * 1024
NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
CHUNK = 1 << 20


class HubError(Exception):
    """An error answer: HTTP status, the Hub's X-Error-Code (or None), a message, extra headers, JSON body."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None, body=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.body = body if body is not None else {"error": message}


def _inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing paths that climb out of the repo."""
    target = (root / rel).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise HubError(400, None, f"invalid path {rel!r}")
    return target


def _is_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client holding a connection open never blocks stop()
    request_queue_size = 128  # several processes, each downloading with 8 threads, connect at once


class HubServer:
    """The server: `start()`/`stop()` or a context manager; `url`; `add_repo`; `repo_path`; the `requests` log."""

    def __init__(self, root: str | Path | None = None, port: int = 0, user: str = "test-user"):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="hub-server-"))
        self.port, self.user, self.requests = port, user, []
        self._commits: dict[tuple[str, str], dict] = {}  # (repo_type, repo_id) -> head {id, title, date}
        self._hashes: dict[tuple, tuple[str, str]] = {}  # (path, size, mtime) -> (git blob sha1, sha256)
        self._lock = threading.RLock()  # held by every change of files or heads
        self._httpd: _Server | None = None

    def start(self) -> HubServer:
        self._httpd = _Server(("127.0.0.1", self.port), type("Handler", (_Handler,), {"hub": self}))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = None

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def repo_path(self, repo_id: str, repo_type: str = "model") -> Path:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(NAME.match(p) and ".." not in p for p in parts) or repo_type not in URL_PREFIXES:
            raise HubError(400, None, f"invalid repo id {repo_id!r} (expected owner/name) or type {repo_type!r}")
        return self.root / f"{repo_type}s" / parts[0] / parts[1]

    def add_repo(self, repo_id: str, files: str | Path | dict[str, bytes | Path], repo_type: str = "model") -> str:
        """Create (or replace) a repo from a folder or a {path_in_repo: bytes | Path} mapping; returns its sha."""
        with self._lock:
            dest = self.repo_path(repo_id, repo_type)
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if isinstance(files, (str, Path)):
                shutil.copytree(files, dest, dirs_exist_ok=True)
            else:
                for rel, content in files.items():
                    _inside(dest, rel).parent.mkdir(parents=True, exist_ok=True)
                    _inside(dest, rel).write_bytes(content if isinstance(content, bytes) else content.read_bytes())
            self._commits.pop((repo_type, repo_id), None)
            return self._new_commit(repo_type, repo_id, "Initial commit")

    def _file_hashes(self, path: Path) -> tuple[str, str]:
        """(git blob sha1, sha256) of a file, cached by size and mtime."""
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            sha1, sha256 = hashlib.sha1(b"blob %d\0" % stat.st_size), hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    sha1.update(chunk)
                    sha256.update(chunk)
            self._hashes[key] = (sha1.hexdigest(), sha256.hexdigest())
        return self._hashes[key]

    def _new_commit(self, repo_type: str, repo_id: str, title: str) -> str:
        """A new head: the sha1 of the parent, the title and every (path, blob sha1), as in git."""
        root = self.repo_path(repo_id, repo_type)
        parent = self._commits.get((repo_type, repo_id), {}).get("id", "")
        listing = "".join(f"{p.relative_to(root).as_posix()} {self._file_hashes(p)[0]}\n"
                          for p in sorted(root.rglob("*")) if p.is_file())
        sha = hashlib.sha1(f"{parent}\n{title}\n{listing}".encode()).hexdigest()
        date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self._commits[(repo_type, repo_id)] = {"id": sha, "title": title, "date": date}
        return sha

    def _head(self, repo_type: str, repo_id: str, revision: str = "main") -> tuple[Path, dict]:
        """The repo folder and its head commit, or the Hub's RepoNotFound / RevisionNotFound."""
        with self._lock:
            root = self.repo_path(repo_id, repo_type)
            if not root.is_dir():
                raise HubError(404, "RepoNotFound", "Repository not found")
            if (repo_type, repo_id) not in self._commits:  # a folder written straight under ROOT
                self._new_commit(repo_type, repo_id, "Initial commit")
            commit = dict(self._commits[(repo_type, repo_id)])
        if revision not in ("main", commit["id"]):
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return root, commit

    def _entry(self, root: Path, path: Path, commit: dict, expand: bool) -> dict:
        """One tree / paths-info item, as `RepoFile(**item)` or `RepoFolder(**item)` reads it."""
        rel = path.relative_to(root).as_posix()
        item = {"type": "directory", "oid": hashlib.sha1(f"{commit['id']}:{rel}".encode()).hexdigest(), "size": 0,
                "path": rel}
        if path.is_file():
            (blob, sha256), size = self._file_hashes(path), path.stat().st_size
            item = {"type": "file", "oid": blob, "size": size, "path": rel}
            if _is_lfs(rel, size):
                item["lfs"] = {"oid": sha256, "size": size, "pointerSize": 134}
        if expand:
            item["lastCommit"] = {"id": commit["id"], "title": commit["title"], "date": commit["date"]}
        return item


class _Handler(BaseHTTPRequestHandler):
    """One request: read the body, route on the path, answer JSON or file bytes, log it on the server."""

    hub: HubServer
    server_version = "hub-server"

    def log_message(self, *args) -> None:  # keep test output clean; `hub.requests` is the log
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self.entry["status"] = code
        super().send_response(code, message)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.entry = {"method": self.command, "path": unquote(split.path), "query": split.query,
                      "authorization": self.headers.get("Authorization"), "status": None, "error": None}
        self.hub.requests.append(self.entry)  # list.append is atomic
        try:
            self._route([unquote(part) for part in split.path.strip("/").split("/")])
        except HubError as e:
            self.entry["error"] = e.code
            self._send_json(e.status, e.body, {"X-Error-Code": e.code, "X-Error-Message": e.message, **e.headers})
        except Exception as e:  # a server bug: answer it rather than drop the connection
            self._send_json(500, {"error": f"{type(e).__name__}: {e}"})

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _route(self, p: list[str]) -> None:
        method = self.command
        if p == ["api", "whoami-v2"] and method == "GET":
            self._require_token()
            return self._send_json(200, {"type": "user", "name": self.hub.user, "fullname": "Test User", "orgs": [],
                                         "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if p == ["api", "agent-harnesses"] and method == "GET":
            return self._send_json(200, {"standardEnvVars": [], "harnesses": {}})
        if p == ["api", "validate-yaml"] and method == "POST":
            return self._send_json(200, {"errors": [], "warnings": []})
        if p == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if len(p) >= 4 and p[0] == "api" and p[1] in REPO_TYPES:
            repo_type, repo_id, rest = REPO_TYPES[p[1]], f"{p[2]}/{p[3]}", p[4:]
            if method == "GET" and (not rest or (len(rest) == 2 and rest[0] == "revision")):
                return self._repo_info(repo_type, repo_id, rest[1] if rest else "main")
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
            if method == "POST" and len(rest) == 2 and rest[0] in ("paths-info", "preupload", "commit"):
                return getattr(self, "_" + rest[0].replace("-", "_"))(repo_type, repo_id, rest[1])
        repo_type = REPO_TYPES[p[0]] if p[0] in ("datasets", "spaces") else "model"
        p = p[1:] if repo_type != "model" else p
        if method in ("GET", "HEAD") and len(p) >= 5 and p[2] == "resolve":
            return self._resolve(repo_type, f"{p[0]}/{p[1]}", p[3], "/".join(p[4:]))
        raise HubError(404, None, f"no route for {method} {self.path}")

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        root, commit = self.hub._head(repo_type, repo_id, revision)
        files = [self.hub._entry(root, path, commit, False) for path in sorted(root.rglob("*")) if path.is_file()]
        siblings = [{"rfilename": f["path"], "size": f["size"], "blobId": f["oid"]} | (
            {"lfs": {"size": f["size"], "sha256": f["lfs"]["oid"], "pointerSize": 134}} if "lfs" in f else {})
            for f in files]
        info = {"_id": commit["id"][:24], "id": repo_id, "author": repo_id.split("/")[0], "sha": commit["id"],
                "lastModified": commit["date"], "createdAt": commit["date"], "private": False, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}
        self._send_json(200, info | ({"modelId": repo_id} if repo_type == "model" else {}))

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        root, commit = self.hub._head(repo_type, repo_id, revision)
        base = _inside(root, path)
        if not base.is_dir():
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision!r}")
        children = sorted(base.rglob("*") if self._flag(self.query, "recursive") else base.iterdir())
        self._send_json(200, [self.hub._entry(root, c, commit, self._flag(self.query, "expand")) for c in children])

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        root, commit = self.hub._head(repo_type, repo_id, revision)
        form = parse_qs(self.body.decode())
        targets = [_inside(root, path) for path in form.get("paths", [])]
        self._send_json(200, [self.hub._entry(root, t, commit, self._flag(form, "expand"))
                              for t in targets if t.exists() and t != root])

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        root, commit = self.hub._head(repo_type, repo_id, revision)
        target = _inside(root, path)
        if not target.is_file():
            raise HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit["id"]})
        (blob, sha256), size = self.hub._file_hashes(target), target.stat().st_size
        start, end, status = 0, size - 1, 200
        headers = {"X-Repo-Commit": commit["id"], "ETag": f'"{sha256 if _is_lfs(path, size) else blob}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if match := re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip()):
            first, last = match.groups()
            start, end = (int(first), min(int(last or end), end)) if first else (max(size - int(last or 0), 0), end)
            if start > end:
                raise HubError(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
            status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        self._send_headers(status, headers | {"Content-Length": str(end - start + 1)})
        if self.command == "GET":
            with target.open("rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0 and (chunk := f.read(min(CHUNK, left))):
                    self.wfile.write(chunk)
                    left -= len(chunk)

    def _create_repo(self) -> None:
        self._require_token()
        payload = json.loads(self.body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.url}/{URL_PREFIXES.get(repo_type, '')}{repo_id}"
        with self.hub._lock:
            if self.hub.repo_path(repo_id, repo_type).exists():
                message = f"You already created this {repo_type} repo"
                raise HubError(409, None, message, body={"error": message, "url": url})
            self.hub.repo_path(repo_id, repo_type).mkdir(parents=True)
            self.hub._new_commit(repo_type, repo_id, "initial commit")
        self._send_json(200, {"url": url, "name": repo_id})

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        """Every file "regular" (content inline in the commit), with the remote git oid so unchanged files skip."""
        self._require_token()
        root, commit = self.hub._head(repo_type, repo_id, revision)
        targets = {item["path"]: _inside(root, item["path"]) for item in json.loads(self.body)["files"]}
        files = [{"path": path, "uploadMode": "regular", "shouldIgnore": False,
                  "oid": self.hub._file_hashes(target)[0] if target.is_file() else None}
                 for path, target in targets.items()]
        self._send_json(200, {"files": files, "commitOid": commit["id"]})

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        self._require_token()
        if "create_pr" in self.query:
            raise HubError(400, None, "create_pr is not supported by this test server")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HubError(400, None, "the first NDJSON line must be the commit header")
        with self.hub._lock:
            root, commit = self.hub._head(repo_type, repo_id, revision)
            if lines[0]["value"].get("parentCommit") not in (None, commit["id"]):
                raise HubError(412, None, "parentCommit is not the head of the branch")
            planned = []  # check every operation before touching a file, so a bad commit changes nothing
            for key, value in ((line["key"], line["value"]) for line in lines[1:]):
                target = _inside(root, value["path"].rstrip("/"))
                if key == "file":
                    planned.append((target, base64.b64decode(value["content"])))
                elif key in ("deletedFile", "deletedFolder"):
                    if target == root or not (target.is_file() if key == "deletedFile" else target.is_dir()):
                        raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
                    planned.append((target, None))
                else:
                    raise HubError(400, None, f"{key!r} (LFS/Xet) is not supported: preupload answers 'regular'")
            for target, data in planned:
                if data is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    (tmp := target.with_name(f".{target.name}.{threading.get_ident()}.tmp")).write_bytes(data)
                    tmp.replace(target)  # readers see the old file or the new one, never half of it
                    continue
                shutil.rmtree(target) if target.is_dir() else target.unlink()
                for parent in target.parents:  # git keeps no empty folders
                    if parent == root or any(parent.iterdir()):
                        break
                    parent.rmdir()
            sha = self.hub._new_commit(repo_type, repo_id, lines[0]["value"].get("summary") or "commit")
        commit_url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}/commit/{sha}"
        self._send_json(200, {"success": True, "commitOid": sha, "commitUrl": commit_url, "hookOutput": ""})

    def _require_token(self) -> None:
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            raise HubError(401, None, "Invalid credentials in Authorization header")

    @staticmethod
    def _flag(values: dict, name: str) -> bool:
        return values.get(name, ["false"])[0].lower() in ("1", "true")

    def _send_headers(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if value is not None:
                self.send_header(key, value)
        self.end_headers()

    def _send_json(self, status: int, payload, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send_headers(status, {"Content-Type": "application/json", "Content-Length": str(len(body))}
                           | (headers or {}))
        if self.command != "HEAD":
            self.wfile.write(body)


def make_dataset_repo_files(rows_by_split: dict[str, list[dict]], config: str = "3.0.0") -> dict[str, bytes]:
    """Files of a dataset repo laid out like abisee/cnn_dailymail: one parquet file per split under `config/`, and
    a README.md whose YAML `configs:` maps `config` to them, which is what `load_dataset(repo, config)` reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, card = {}, ["---", "configs:", f"- config_name: {json.dumps(config)}", "  data_files:"]
    for split, rows in rows_by_split.items():
        path = f"{config}/{split}-00000-of-00001.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        files[path] = sink.getvalue().to_pybytes()
        card += [f"  - split: {split}", f"    path: {path}"]
    files["README.md"] = "\n".join(card + ["---", "", f"# Test dataset (config {config})", ""]).encode()
    return files
