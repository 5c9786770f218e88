"""Files and records -> :class:`~rag.types.Article`.

:func:`load_articles` walks a source folder and turns every supported file into articles:

* ``.txt`` / ``.md``: the title is the first non-empty line (Markdown: without heading
  ``#`` marks); the text is the whole file, title line included, so it stays quotable.
* ``.html`` / ``.htm``: the main text extracted by trafilatura (no navigation, footers,
  scripts); title, author, date and url from the page metadata, else the ``<title>`` tag.
  The date is one the markup states (``article:published_time`` and other meta tags,
  ``<time>``, JSON-LD, a dated URL path): trafilatura's extensive search, which also
  takes a date from the text (a copyright line's year became "2023-01-01", the date of
  an event the story tells became its publication date), is off.
* ``.json``: a list of records, a single record object, or ``{"articles": [...]}``.
  ``.jsonl``: one record per line. A record has ``text`` and optionally ``id``, ``title``,
  ``url``, ``published``, ``source``, ``author``.
* ``.pdf`` / ``.docx``: read by :mod:`rag.ingest.documents` (binary: never decoded as
  text): the pages' texts joined with ``"\\n\\n"``, ``Article.pages`` the start offset of
  every page (a DOCX without page breaks has none: ``pages == ()``); title and author
  from the document's metadata, the title else the first line, else the file name; the
  metadata's creation date is the article's ``file_date``, never ``published`` (it is
  when the file was made, not when the text was published). Refused with a reason:
  encrypted or damaged files, PDFs without a text layer (no OCR) or with more than
  ``max_pdf_pages`` pages (checked before any text is read), DOCX zip bombs and DOCX
  XML with a DTD or entities, and documents that need more memory or time than the
  reader's limits (:mod:`rag.ingest.sandbox`: read in a worker process, cached by
  content).

Dates: ``Article.date_source`` says where the article's date came from: ``record`` (a
record's ``published``; a record the web fetcher saved says ``page`` or ``feed`` in its
``date_source``), ``page`` (an HTML file's metadata), ``file`` (no publication date, only
a document's ``file_date``), None without a date.

Text contract: line ends are normalised (``"\\r\\n"`` and ``"\\r"`` become ``"\\n"``), NUL
characters are removed (lone surrogates from JSON become U+FFFD) and trailing whitespace at
the very end is stripped (PDF and DOCX: of every page, form feeds removed too); nothing
else is changed. Every offset elsewhere in the package refers to this normalised text,
which is what the index stores.

Problems never raise (except a missing source folder): the file or record comes back as a
:class:`~rag.types.Skipped` with a reason a person can act on.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import html
import itertools
import json
import operator
import os
import re
import stat
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from ..types import Article, BuildError, Skipped
from .documents import MAX_PDF_PAGES, Unreadable
from .sandbox import document_reader, read_document

SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".json", ".jsonl",
                                       ".pdf", ".docx")
_BINARY_SUFFIXES = (".pdf", ".docx")

_TITLE_MAX_CHARS = 200
_CONTROL_SHARE_MAX = 0.05  # above this share of control characters a file is "binary"
# C0/C1 control characters other than \t \n \v \f \r and ESC
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_RECORD_FIELDS = ("title", "url", "published", "source", "author")
# what a record's own "date_source" may say (the web fetcher's records: rag.ingest.web)
_RECORD_DATE_SOURCES = ("record", "page", "feed")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+|$)(.*?)(?:\s+#+\s*)?$")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
# the reason for a file or JSON line nested deeper than the parsers' recursion allows
NESTING_TOO_DEEP = "nesting too deep (more levels than Python's recursion limit allows)"


class _Skip(Exception):
    """Internal: the current file or record cannot be used; ``str(exc)`` is the reason."""


def text_hash(text: str) -> str:
    """sha256 hex of ``text`` (UTF-8); used to find the same text under different ids."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def content_hash(*, title: str, text: str, url: str | None = None, published: str | None = None,
                 author: str | None = None, source: str = "", pages: tuple[int, ...] = (),
                 file_date: str | None = None) -> str:
    """sha256 hex over a canonical JSON of the text and its metadata.

    Any change of title, text, url, published, author, source or file_date changes the
    hash, so the build treats it as an update (``file_date`` counts only when set, so the
    hash of an article without one is what it was before the field existed).
    """
    fields = {"title": title, "text": text, "url": url, "published": published,
              "author": author, "source": source}
    if file_date:
        fields["file_date"] = file_date
    return text_hash(json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")))


def make_article(
    id: str, title: str, text: str, source: str, *, url: str | None = None,
    published: str | None = None, author: str | None = None, pages: tuple[int, ...] = (),
    file_date: str | None = None, date_source: str | None = None,
) -> Article:
    """An :class:`Article` with its ``content_hash`` filled in. ``date_source`` is where
    ``published`` came from ("record" when not given); without ``published`` it is
    "file" when there is a ``file_date``, else None."""
    pages = tuple(int(p) for p in pages)
    digest = content_hash(title=title, text=text, url=url, published=published,
                          author=author, source=source, pages=pages, file_date=file_date)
    if published:
        date_source = date_source if date_source in _RECORD_DATE_SOURCES else "record"
    else:
        date_source = "file" if file_date else None
    return Article(id=id, title=title, text=text, source=source, url=url,
                   published=published, author=author, content_hash=digest, pages=pages,
                   file_date=file_date, date_source=date_source)


def iter_source_files(source: Path) -> list[Path]:
    """The files :func:`load_articles` would read, in deterministic (sorted) order.

    Recursive; hidden files and folders (name starting with ``.``) are skipped; only
    :data:`SUPPORTED_SUFFIXES` (case-insensitive) are listed. Symlinked folders are
    followed, but each real folder is visited once, so symlink loops terminate.
    Raises :class:`BuildError` when ``source`` is missing or not a folder.
    """
    return [Path(path) for _, path, _ in _walk(Path(source))[0]]


def _walk(source: Path) -> tuple[list[tuple[str, str, tuple | None]], list[Skipped]]:
    """Supported files under ``source`` (sorted by relative path) as (relative id, path,
    (size, modification time ns, inode) or None when it cannot be stat-ed), and the
    folders that could not be listed. One ``scandir`` per folder, string work only
    (pathlib and a second ``stat`` per file were most of a 100k-file build's reading)."""
    if not source.exists():
        raise BuildError(f"source folder not found: {source}")
    if not source.is_dir():
        raise BuildError(f"source is a file, not a folder: {source}")
    seen_dirs = {os.path.realpath(source)}
    found: list[tuple[str, str, tuple | None]] = []
    errors: list[Skipped] = []
    stack = [(os.fspath(source), "")]  # depth first, each folder's entries in name order
    while stack:
        dirpath, rel_dir = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            try:
                rel = _relative_id(Path(exc.filename or dirpath), source)
            except ValueError:
                rel = str(exc.filename or dirpath)
            errors.append(Skipped(rel + "/", exc.strerror or str(exc)))
            continue
        below = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks, as os.walk(followlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(entry.path)
                if real in seen_dirs:
                    continue  # a symlink loop, or a folder already reached another way
                seen_dirs.add(real)
                below.append((entry.path, rel_dir + name + "/"))
                continue
            if not _readable_name(name):
                continue
            try:
                key = _stat_key(entry.stat())
            except OSError:
                key = None
            rel = (rel_dir + name).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            found.append((rel, entry.path, key))
        stack.extend(reversed(below))
    return sorted(found, key=lambda f: f[0]), errors


def _readable_name(name: str) -> bool:
    """Whether a file named ``name`` is one the loaders read (by its suffix)."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in SUPPORTED_SUFFIXES


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """What says a file changed: its (size, modification time ns, inode)."""
    return st.st_size, st.st_mtime_ns, st.st_ino


def _relative_id(path: Path, source: Path) -> str:
    """POSIX path of ``path`` relative to ``source``; undecodable bytes become U+FFFD."""
    rel = path.relative_to(source).as_posix()
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _decode(data: bytes, *, fallback_encoding: str | None = None) -> str:
    """Bytes of a text file -> ``str``, or raise ``_Skip("binary file")``.

    Order: a BOM (UTF-8, UTF-32, UTF-16) decides; otherwise NUL bytes mean binary; then
    strict UTF-8; then ``fallback_encoding`` (e.g. an HTML ``<meta charset>``); then
    cp1252, then latin-1. A result with a high share of control characters is binary.
    """
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
            (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"))
    text: str | None = None
    for bom, encoding in boms:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _Skip(f"undecodable {encoding} text ({exc.reason})") from None
            break
    if text is None:
        if b"\x00" in data:
            raise _Skip("binary file")
        for encoding in filter(None, ("utf-8", fallback_encoding, "cp1252", "latin-1")):
            try:
                text = data.decode(encoding)
                break
            except (UnicodeDecodeError, LookupError):
                continue
    assert text is not None  # latin-1 decodes any bytes
    if text and len(_CONTROLS.findall(text)) / len(text) > _CONTROL_SHARE_MAX:
        raise _Skip("binary file")
    return text


def normalize_text(text: str) -> str:
    """The stored form of an article text: ``\\r\\n`` and ``\\r`` -> ``\\n``, NULs removed,
    lone surrogates (possible in JSON strings) -> U+FFFD, trailing whitespace stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return _SURROGATES.sub("\ufffd", text).rstrip()


def _read(path: Path, max_file_bytes: int) -> bytes:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device named *.txt would block or never end
        raise _Skip("not a regular file")
    size = st.st_size
    if size > max_file_bytes:
        raise _Skip(f"too large ({_fmt_size(size)} > {_fmt_size(max_file_bytes)} limit)")
    with path.open("rb") as fh:
        data = fh.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:  # grew since stat
        raise _Skip(f"too large (> {_fmt_size(max_file_bytes)} limit)")
    return data


def _fmt_size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n} bytes"


def _clip(title: str) -> str:
    """Whitespace collapsed; at most ``_TITLE_MAX_CHARS`` (cut at a word, then "…")."""
    title = " ".join(title.split())
    if len(title) <= _TITLE_MAX_CHARS:
        return title
    cut = title[:_TITLE_MAX_CHARS].rsplit(" ", 1)[0] or title[:_TITLE_MAX_CHARS]
    return cut + "…"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.split("\n") if line.strip()), "")


def _markdown_title(text: str) -> str:
    """First non-empty line outside a YAML front matter, heading marks removed;
    a ``title:`` in the front matter wins."""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
        if end:
            for line in lines[1:end]:
                key, _, value = line.partition(":")
                if key.strip().lower() == "title" and value.strip():
                    return value.strip().strip("\"'")
            lines = lines[end + 1:]
    first = _first_line("\n".join(lines))
    match = _MD_HEADING.match(first)
    return match.group(1).strip() if match else first


def load_file(
    path: Path, rel: str, *, max_file_bytes: int = 50 * 1024 * 1024,
    max_pdf_pages: int = MAX_PDF_PAGES,
) -> tuple[list[Article], list[Skipped]]:
    """Read one file (``rel`` = its id / relative path) into articles and skips.

    No deduplication across files here; :func:`load_articles` does that.
    Unsupported suffixes give ``([], [])``.
    """
    located, skipped = _load_located(path, rel, max_file_bytes, max_pdf_pages)
    return [art for art, _ in located], skipped


def _load_located(
    path: Path, rel: str, max_file_bytes: int, max_pdf_pages: int = MAX_PDF_PAGES
) -> tuple[list[tuple[Article, str]], list[Skipped]]:
    """Like :func:`load_file`, each article paired with where it came from
    (``rel``, ``rel:<line>`` or ``rel#<position>``)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return [], []
    try:
        data = _read(path, max_file_bytes)
        if suffix in _BINARY_SUFFIXES:  # before any text decoding
            return [(_read_document(data, suffix, rel, path.stem, max_pdf_pages), rel)], []
        fallback = None
        if suffix in (".html", ".htm"):
            declared = _HTML_CHARSET.search(data[:4096])
            fallback = declared.group(1).decode("ascii") if declared else None
        raw = _decode(data, fallback_encoding=fallback)
        if not normalize_text(raw).strip():
            raise _Skip("empty")
        if suffix in (".json", ".jsonl"):
            found, bad = _read_records(raw, rel, jsonl=suffix == ".jsonl")
            if not found and not bad:
                raise _Skip("no records")
            return found, bad
        if suffix in (".html", ".htm"):
            return [(_read_html(raw, rel, path.stem), rel)], []
        text = normalize_text(raw)
        title = _markdown_title(text) if suffix == ".md" else _first_line(text)
        return [(make_article(rel, _clip(title) or path.stem, text, rel), rel)], []
    except _Skip as exc:
        return [], [Skipped(rel, str(exc))]
    except OSError as exc:
        return [], [Skipped(rel, exc.strerror or str(exc))]
    # one file's failure is that file's skip, never the build's end (issue 22: a 200 KB
    # ``[[[...]]]`` raised RecursionError out of every build and upload)
    except RecursionError:
        return [], [Skipped(rel, NESTING_TOO_DEEP)]
    except MemoryError:
        return [], [Skipped(rel, "out of memory while reading it")]
    except Exception as exc:  # a reader's bug or a file it did not expect
        return [], [Skipped(rel, f"could not be read ({_describe(exc)})")]


def _describe(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an unexpected exception, the message cut to ``limit``."""
    message = " ".join(str(exc).split())
    message = message if len(message) <= limit else message[:limit] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _read_document(data: bytes, suffix: str, rel: str, stem: str, max_pdf_pages: int) -> Article:
    """A PDF or DOCX file's article (see :mod:`rag.ingest.documents`), or ``_Skip``."""
    if not data or data.isspace():
        raise _Skip("empty")
    try:
        doc = read_document(data, suffix, max_pages=max_pdf_pages)  # limited, cached
    except Unreadable as exc:
        raise _Skip(str(exc)) from None
    if not doc.text.strip():
        raise _Skip("no text")
    title = _clip(doc.title) or _clip(_first_line(doc.text)) or stem
    return make_article(rel, title, doc.text, rel, author=doc.author or None,
                        file_date=doc.file_date, pages=doc.pages)


def extract_html(raw: str) -> tuple[str, Any, str]:
    """The main text of an HTML page (trafilatura: no navigation, footers, scripts;
    normalised like every article text), its trafilatura metadata (``title``, ``author``,
    ``date``, ``url``, ``sitename``; attributes may be None) and its title (metadata, else
    the ``<title>`` tag; may be ""). Raises ``_Skip`` when no text can be extracted."""
    import trafilatura  # heavy import, only when there is HTML to read

    extracted = trafilatura.extract(raw, output_format="txt", include_comments=False,
                                    include_tables=True, with_metadata=False)
    text = normalize_text(extracted or "")
    if not text.strip():
        raise _Skip("no extractable text in HTML")
    # extensive=False: only dates the markup states (see the module docstring)
    meta = trafilatura.extract_metadata(raw, extensive=False)
    title = (getattr(meta, "title", None) or "").strip()
    if not title:
        match = _HTML_TITLE.search(raw)
        title = html.unescape(match.group(1)).strip() if match else ""
    return text, meta, title


def _read_html(raw: str, rel: str, stem: str) -> Article:
    text, meta, title = extract_html(raw)
    return make_article(rel, _clip(title or _first_line(text) or stem), text, rel,
                        url=getattr(meta, "url", None) or None,
                        published=getattr(meta, "date", None) or None,
                        author=getattr(meta, "author", None) or None, date_source="page")


def _read_records(
    raw: str, rel: str, *, jsonl: bool
) -> tuple[list[tuple[Article, str]], list[Skipped]]:
    """Records of a ``.json`` / ``.jsonl`` file. A ``.json`` file holding JSON Lines is
    read as JSON Lines. Ids default to ``<rel>#<n>`` (JSON Lines: line number; JSON list:
    1-based position); a single-object ``.json`` file defaults to ``<rel>``."""
    raw = raw.lstrip("\ufeff")
    if not jsonl:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise _Skip(f"invalid JSON ({exc})") from None
            jsonl = True  # several JSON values: JSON Lines saved as .json
        else:
            if isinstance(data, dict) and isinstance(data.get("articles"), list):
                data = data["articles"]
            if isinstance(data, dict):
                return _collect(rel, [(rel, rel, "", data)])
            if not isinstance(data, list):
                raise _Skip("JSON must be a list of records, a record or {\"articles\": [...]}")
            items = [(f"{rel}#{i}", f"{rel}#{i}", f"record {i}: ", rec)
                     for i, rec in enumerate(data, 1)]
            return _collect(rel, items)
    return _collect(rel, _jsonl_records(raw, rel))


def _jsonl_records(raw: str, rel: str) -> Iterator[tuple[str, str, str, Any]]:
    """(default id, skip path, reason prefix, parsed record or _Skip) per non-blank line."""
    for n, line in enumerate(raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if not line.strip():
            continue
        try:
            record: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            record = _Skip(f"invalid JSON ({exc})")
        except RecursionError:  # this line only: the others are still read
            record = _Skip(NESTING_TOO_DEEP)
        yield f"{rel}#{n}", f"{rel}:{n}", f"line {n}: ", record


def _collect(rel: str, items: Any) -> tuple[list[tuple[Article, str]], list[Skipped]]:
    """Articles (with their location) and skips from (default id, location, reason
    prefix, record) items."""
    articles: list[tuple[Article, str]] = []
    skipped: list[Skipped] = []
    for default_id, where, prefix, record in items:
        try:
            if isinstance(record, _Skip):
                raise record
            articles.append((_record_article(record, default_id, rel), where))
        except _Skip as exc:
            skipped.append(Skipped(where, f"{prefix}{exc}"))
    return articles, skipped


def _record_article(record: Any, default_id: str, rel: str) -> Article:
    if not isinstance(record, dict):
        raise _Skip(f"record must be a JSON object, not {type(record).__name__}")
    text = record.get("text")
    text = normalize_text(text) if isinstance(text, str) else ""
    if not text.strip():
        raise _Skip("record has no usable \"text\"")
    rid = record.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int, type(None))):
        raise _Skip("\"id\" must be a string or a number")
    rid = default_id if rid is None or rid == "" else str(rid)
    meta = {name: _scalar(record.get(name)) for name in _RECORD_FIELDS}
    title = _clip(meta["title"] or _first_line(text))
    source = meta["source"] or meta["url"] or rel
    return make_article(rid, title, text, source, url=meta["url"],
                        published=meta["published"], author=meta["author"],
                        date_source=_scalar(record.get("date_source")))


def _scalar(value: Any) -> str | None:
    """A metadata value as a clean string (lists of strings are joined), or None."""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if isinstance(v, (str, int, float)))
    if value is None or isinstance(value, (dict, bool)):
        return None
    value = _SURROGATES.sub("\ufffd", str(value)).strip()
    return value or None


@dataclass(frozen=True)
class Indexed:
    """What the live index holds, for the duplicate rules of :func:`load_sources`:
    ``files`` maps an article id to the file (relative path) it was read from (manifests
    since issue 22 record it as ``origins``); ``hashes`` maps an id to its content hash
    (every manifest's ``articles``), which identifies the indexed claimant when the index
    did not record files."""

    files: Mapping[str, str] = field(default_factory=dict)
    hashes: Mapping[str, str] = field(default_factory=dict)
    version: str | None = None  # the live version's name, when these are one version's


@dataclass(frozen=True)
class Loaded:
    """The result of :func:`load_sources`: the articles (file order), the skips, and the
    file (relative path) each article was read from (id -> file). With a
    :class:`SourceCache`, the articles of files unchanged since they were last read are
    not read again: ``unread`` holds their ids, and those articles carry their id,
    metadata and content hash but no text until :meth:`full` reads it.

    A load with a cache shares its lists and maps with what the process keeps of the
    folder (``_Settled``, patched by the next load instead of rebuilt): it is valid
    until this process's next load of that folder, which builds (one at a time per
    index, under its lock) never outlive. Read it; never modify it."""

    articles: list[Article]
    skipped: list[Skipped]
    files: Mapping[str, str]
    source: Path | None = None
    unread: "Collection[str]" = frozenset()
    max_file_bytes: int = 50 * 1024 * 1024
    max_pdf_pages: int = MAX_PDF_PAGES
    _read_now: dict = field(default_factory=dict, compare=False, repr=False)
    # a watched load patched from this process's last one (issue 26): ``delta`` holds
    # the ids of every article read from the files it looked at (before and now: any
    # other article is as that load had it), ``base`` the index version a build
    # published from that load (None: none did). Both None after a walk.
    delta: frozenset[str] | None = None
    base: str | None = None
    _settled: "_Settled | None" = field(default=None, compare=False, repr=False)
    _by_id: dict = field(default_factory=dict, compare=False, repr=False)

    def ids_but(self, moved: "Collection[str]") -> tuple[str, ...]:
        """The articles' ids in corpus order, less those in ``moved`` (all here)."""
        kept = self._settled
        if kept is None:
            gone = moved if isinstance(moved, (set, frozenset)) else set(moved)
            return tuple(itertools.filterfalse(gone.__contains__, map(_ID, self.articles)))
        # a copy less the moved ones (~0.5 ms at 100k; a set filter over every id was
        # ~10 ms), as a tuple: the collector stops tracking it
        ids = kept.ids.copy()
        for at in sorted((bisect.bisect_left(kept.orders, kept.claims[aid].order)
                          for aid in moved), reverse=True):
            del ids[at]
        return tuple(ids)

    @property
    def order(self) -> Mapping[str, Any] | None:
        """Article id -> a key that sorts in corpus order ((file, place in the file)),
        None when this load keeps none (then the place in ``articles`` is the order)."""
        return None if self._settled is None else _View(self._settled.claims, _ORDER)

    def article(self, article_id: str) -> Article:
        """The article ``article_id`` (KeyError when not here), maybe without its text
        (:meth:`full` reads it)."""
        if self._settled is not None:
            return self._settled.claims[article_id].article
        if not self._by_id:
            self._by_id.update(zip(map(_ID, self.articles), self.articles))
        return self._by_id[article_id]

    def pick(self, ids: "Collection[str]") -> list[Article]:
        """The articles of ``ids`` (all in ``articles``), in corpus order, with texts."""
        if self._settled is not None:
            claims = sorted(map(self._settled.claims.__getitem__, ids), key=_ORDER)
            return list(map(self.full, map(_ARTICLE, claims)))
        wanted = ids if isinstance(ids, (set, frozenset)) else set(ids)
        return list(map(self.full, itertools.compress(
            self.articles, map(wanted.__contains__, map(_ID, self.articles)))))

    def published(self, version: str) -> None:
        """Say that the index's live ``version`` holds exactly this load's articles (a
        build published it from them, or found nothing to change): the next watched
        load may then report what changed since as ``delta`` against it."""
        if self._settled is not None:
            self._settled.base = version
        self.done()

    def done(self) -> None:
        """Say that the build is done with this load's texts: what the process keeps
        of the folder drops them (read again from the files when needed)."""
        if self._settled is not None:
            self._settled.drop_texts()

    def full(self, article: Article) -> Article:
        """``article`` with its text (read from its file now, once, when it was not)."""
        if article.id not in self.unread:
            return article
        if article.id in self._read_now:
            return self._read_now[article.id]
        self._read_now[article.id] = got = self._read(article)
        return got

    def _read(self, article: Article) -> Article:
        rel = self.files[article.id]
        got, _ = load_file(self.source / rel, rel, max_file_bytes=self.max_file_bytes,
                           max_pdf_pages=self.max_pdf_pages)
        for a in got:
            if a.id == article.id and a.content_hash == article.content_hash:
                return a
        raise BuildError(f"{rel} changed while the build read it; build again")


def load_articles(
    source: Path, *, max_file_bytes: int = 50 * 1024 * 1024, progress: bool = False,
    max_pdf_pages: int = MAX_PDF_PAGES,
) -> tuple[list[Article], list[Skipped]]:
    """``(articles, skipped)`` of :func:`load_sources` without an index to defer to."""
    got = load_sources(source, max_file_bytes=max_file_bytes, progress=progress,
                       max_pdf_pages=max_pdf_pages)
    return got.articles, got.skipped


def load_sources(
    source: Path, *, max_file_bytes: int = 50 * 1024 * 1024, progress: bool = False,
    max_pdf_pages: int = MAX_PDF_PAGES, indexed: Indexed | None = None,
    cache: "SourceCache | None" = None, changed: "Sequence[str | os.PathLike] | None" = None,
) -> Loaded:
    """Every article under ``source``, and every supported file or record that was not used.

    Files come in the order of :func:`iter_source_files`; records in file order. File ids
    are paths relative to ``source`` (POSIX separators); record ids are the record's
    ``id`` or ``<relpath>#<line or position>``. ``source`` of an article is the record's
    ``source`` or ``url``, else the relative path. Files with other suffixes are ignored
    silently. ``progress`` shows a progress bar (plain lines when stderr is not a
    terminal: rag.ingest.progress). PDFs with more than ``max_pdf_pages`` pages are
    skipped before their text is read. Raises :class:`BuildError` when ``source`` is
    missing or not a folder.

    Duplicates (each id and each text is indexed once). Which claimant wins must not be
    up to whoever can name a file so that it sorts first (issue 22: an upload named
    ``a.json`` declaring the id ``nile.txt`` took over ``nile.txt``), so claimants are
    ranked, best first:

    1. the one read from the file the live index read that id from (``indexed.files``),
       edited or not; for a text: an article whose id the index holds;
    2. the one whose content is what the index holds under that id (``indexed.hashes``:
       indexes that did not record files);
    3. file order (the first one): only between claimants none of which the index holds,
       so nothing indexed can be taken over this way.

    The others are skipped: "duplicate id of <where the winner is>" (with "(the file the
    index read it from)" when rule 1 or 2 decided) or "duplicate of <winner's id>" for
    an identical text. Ids are settled first, then texts among the articles kept.

    ``cache`` (:class:`SourceCache`): a file whose size, modification time and inode
    are those it had when last read is not read again (:class:`Loaded`'s ``unread``).

    ``changed``: the files and folders (paths under ``source``) that may have been
    created, modified, moved or deleted since this process last loaded ``source`` with
    the same ``cache``, as a watcher reports them. Only those are looked at again; the
    rest of the folder is taken from that last load, so the folder is not walked (a
    1-file change among 100k costs what changed). Trusting it is the caller's promise
    that nothing else changed. Ignored, and the folder walked, when this process holds
    no load of it (its first build, another cache file, other limits).
    """
    from .progress import progress_bar

    source = Path(source)
    indexed = indexed or Indexed()
    settings = (max_file_bytes, max_pdf_pages)
    warm = cache.warm(settings) if cache is not None else None
    listed = warm.folder if warm is not None and changed is not None else None
    touched = None
    if listed is not None:
        touched = listed.update(source, changed)
        walk_errors = listed.errors
        walked = listed.walked() if touched is None else []  # else read by rels below
    else:
        walked, walk_errors = _walk(source)
    skipped = list(walk_errors)
    known_files = warm.files if warm is not None else {}

    def look(rel: str, path: str, fstat: tuple | None) -> tuple:
        """(stat, claims, skips, unread ids) of one file: as this process last saw it,
        from the cache, or read now."""
        hit = known_files.get(rel)
        if hit is not None and hit[0] == fstat:  # as this process last saw it
            return hit
        # PDF and DOCX go through the reader's own cache of parsed texts (keyed by
        # their bytes), which keeps what the folder still holds
        cached = cache is not None and fstat is not None and \
            rel[rel.rfind("."):].lower() not in _BINARY_SUFFIXES
        key = SourceCache.key(fstat, settings) if cached else ""
        known = cache.get(rel, key) if cached else None
        if known is not None:
            located, bad = known
        else:
            got, bad = _load_located(Path(path), rel, max_file_bytes, max_pdf_pages)
            located = [(art, where, text_hash(art.text)) for art, where in got]
            if cached:
                cache.put(rel, key, located, bad)
        claims = [_Claim((rel, n), art, where, rel, digest)
                  for n, (art, where, digest) in enumerate(located)]
        if cached:
            cache.remember(rel, fstat, claims, bad, known is None)
        return fstat, claims, bad, tuple(art.id for art, _, _ in located) \
            if known is not None else ()

    settled = warm.settled if warm is not None else None
    with document_reader():  # one worker for the folder's PDF and DOCX files
        if touched is not None and settled is not None and settled.trusts(indexed):
            # a watcher's report over a load this process settled: patch that load with
            # the files looked at (issue 26: a 1-file change among 100k costs what
            # changed; the walk-and-settle below is ~0.2 s there)
            settled.drop_texts()  # (before look() replaces the rows it takes stubs from)
            uncached = settled.made.uncached
            again = touched | uncached.keys() | listed.gone
            before = {rel: uncached.get(rel) or known_files.get(rel) for rel in again}
            now = {rel: look(*listed.entry(rel)) for rel in sorted(again)
                   if rel in listed.names()}
            patched = settled.patch(before, now, known_files, indexed)
            if patched is not None:
                if cache is not None:
                    cache.keep_only(listed.names(), gone=listed.gone)
                return patched.loaded(walk_errors, source, max_file_bytes, max_pdf_pages)
        # the files and what look() gave each, in file order (two lists: a tuple per
        # file would be 100k more objects for the collector to walk during the load)
        rels: list[str] = []
        rows: list[tuple] = []
        if touched is None:
            for rel, path, fstat in (progress_bar(walked, desc="loading", unit="file")
                                     if progress else walked):
                rels.append(rel)
                rows.append(look(rel, path, fstat))
        else:
            # a watcher's report: the files outside it are as this process last saw
            # them, so only those in it (and any not kept, e.g. PDFs) are looked at,
            # and the rest is joined in file order by C-level maps (a loop per file was
            # 0.13 s of a one-article build at 100k files)
            rels = list(listed.rels())  # (kept below: the listing changes later)
            rows = list(map(known_files.get, rels))
            again = touched.union(itertools.compress(rels, map(operator.not_, rows)))
            for rel in again:
                rows[bisect.bisect_left(rels, rel)] = look(*listed.entry(rel))
    found = list(itertools.chain.from_iterable(map(_CLAIMS, rows)))
    skipped.extend(itertools.chain.from_iterable(map(_SKIPS, rows)))
    unread = set(itertools.chain.from_iterable(map(_UNREAD, rows)))
    if warm is not None and listed is None:
        warm.folder = _Folder(walked, walk_errors)  # the listing to keep current
    if cache is not None:
        cache.keep_only(listed.names() if listed is not None else {f[0] for f in walked})
    kept, late = _settle_ids(found, indexed)
    kept, copies = _settle_texts(kept, indexed)
    settle_skips = [s for _, s in sorted(late + copies, key=lambda t: t[0])]
    skipped.extend(settle_skips)
    if warm is not None:
        # kept to patch the next watched load (~50 ms more for 100k articles, once)
        warm.settled = _Settled.of(rels, rows, found, kept, settle_skips, unread, known_files,
                                   indexed.version)
        return warm.settled.loaded(walk_errors, source, max_file_bytes, max_pdf_pages,
                                   skipped=skipped)
    # C-level maps over the kept claims (comprehensions were ~0.05 s at 100k articles)
    articles = list(map(_ARTICLE, kept))
    files = dict(zip(map(_ID, articles), map(_FILE, kept)))
    return Loaded(articles, skipped, files, source, frozenset(unread & files.keys()),
                  max_file_bytes, max_pdf_pages)


_ARTICLE, _ID, _FILE = (operator.attrgetter(n) for n in ("article", "id", "file"))
_CLAIMS, _SKIPS, _UNREAD = (operator.itemgetter(n) for n in (1, 2, 3))
_ORDER = operator.attrgetter("order")


class _View(Mapping):
    """A read-only map of article id -> one attribute of its claim (``get`` the
    attribute), over a dict of claims (C-level lookups; iterating costs a pass)."""

    def __init__(self, claims: Mapping[str, "_Claim"], get) -> None:
        self._claims, self._get = claims, get

    def __getitem__(self, key: str):
        return self._get(self._claims[key])

    def __contains__(self, key: object) -> bool:
        return key in self._claims

    def __iter__(self):
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)


# Past this many claims in and out, a load settles everything again instead of patching:
# each patched claim moves ~4 lists of 100k pointers (~0.1 ms at 100k articles), a
# full settle costs ~0.2 s there (a folder of a few thousand files copied in at once)
PATCH_MAX = 1000


@dataclass
class _Settled:
    """A load's outcome, kept by the process (:class:`_Warm`) so that the next load from
    a watcher's report patches it instead of joining and settling every file again:
    the kept claims in file order (and their orders, articles and a map by id), how
    many claims each id and each text has over all files (a change that touches only
    ids and texts claimed once settles to itself), the files' skips, the unread ids,
    the files not kept in :class:`_Warm` (PDF, DOCX: looked at on every load), the
    index version the duplicate rules deferred to, and ``base``: the version a build
    published from this load (:meth:`Loaded.published`)."""

    kept: list["_Claim"]
    orders: list[Order]
    articles: list[Article]
    ids: list[str]
    claims: dict[str, "_Claim"]
    settle_skips: list[Skipped]
    unread: set[str]
    indexed_version: str | None
    base: str | None = None
    # made on the first patch (:attr:`made`) from (the files' rows, every claim, the
    # kept files' map): ~0.2 s at 100k articles that a one-off build never needs
    _pending: tuple | None = None
    # the files whose kept claims still carry their texts (read by this load), and the
    # process's kept rows, whose text-less stubs replace them once a build is done with
    # them (:meth:`drop_texts`): 100k texts are not held for the life of the process
    _with_text: list[str] = field(default_factory=list)
    _files: Mapping[str, tuple] = field(default_factory=dict)

    @classmethod
    def of(cls, rels, rows, found, kept, settle_skips, unread, known_files,
           indexed_version) -> "_Settled":
        claims = dict(zip(map(_ID, map(_ARTICLE, kept)), kept))
        read = list(itertools.compress(rels, map(operator.not_, map(_UNREAD, rows))))
        return cls(kept, list(map(_ORDER, kept)), list(map(_ARTICLE, kept)),
                   list(claims), claims, list(settle_skips), unread & claims.keys(),
                   indexed_version, _pending=(rels, rows, found, known_files),
                   _with_text=read, _files=known_files)

    def drop_texts(self) -> None:
        """Replace the kept claims that carry their article's text by the stubs the
        process keeps of their files (text-less; :meth:`Loaded.full` reads a text again
        when needed): after a build used this load, and before a patched load looks
        at its files."""
        for rel in self._with_text:
            row = self._files.get(rel)
            for stub in row[1] if row else ():
                aid = stub.article.id
                c = self.claims.get(aid)
                if c is None or c.order != stub.order or not c.article.text:
                    continue
                i = bisect.bisect_left(self.orders, c.order)
                self.kept[i], self.articles[i], self.claims[aid] = stub, stub.article, stub
                self.unread.add(aid)
        self._with_text = []

    @cached_property
    def made(self) -> "_Made":
        """Each id's and text's claim counts, the files' skips and the files not kept in
        :class:`_Warm`; made once (a watching process makes them after a walk,
        :func:`prepare_patches`, so that its first change does not wait)."""
        rels, rows, found, known_files = self._pending
        self._pending = None
        return _Made(dict(Counter(map(_ID, map(_ARTICLE, found)))),
                     dict(Counter(map(operator.attrgetter("digest"), found))),
                     {rel: list(row[2]) for rel, row in zip(rels, rows) if row[2]},
                     {rel: row for rel, row in zip(rels, rows) if rel not in known_files})

    def trusts(self, indexed: Indexed) -> bool:
        """Whether this load's duplicate rulings hold against ``indexed``: it is the
        version they deferred to, or the one published from this load (which differs
        from that by this load's own, uncontested, changes)."""
        return indexed.version is not None and \
            indexed.version in (self.indexed_version, self.base)

    def patch(self, before: Mapping[str, tuple | None], now: Mapping[str, tuple],
              known_files: Mapping[str, tuple], indexed: Indexed) -> "_Patched | None":
        """Replace the claims of the files in ``before`` (what each held: a row of
        ``look``, or None) by those in ``now`` (the ones still there). None, changing
        nothing, when an id or text of either side is claimed more than once (the
        duplicate rules must rank it: the caller settles everything again)."""
        olds = [c for row in before.values() if row for c in row[1]]
        news = [c for row in now.values() for c in row[1]]
        if len(olds) + len(news) > PATCH_MAX:
            return None
        made = self.made
        out_ids = Counter(map(_ID, map(_ARTICLE, olds)))
        in_ids = Counter(map(_ID, map(_ARTICLE, news)))
        out_d = Counter(c.digest for c in olds)
        in_d = Counter(c.digest for c in news)
        for c in olds:
            if made.id_count.get(c.article.id) != 1 or made.digest_count.get(c.digest) != 1:
                return None
        for c in news:
            aid, d = c.article.id, c.digest
            if made.id_count.get(aid, 0) - out_ids[aid] + in_ids[aid] != 1 or \
                    made.digest_count.get(d, 0) - out_d[d] + in_d[d] != 1:
                return None
        for c in olds:
            i = bisect.bisect_left(self.orders, c.order)
            del self.orders[i], self.kept[i], self.articles[i], self.ids[i]
            aid = c.article.id
            del self.claims[aid], made.id_count[aid], made.digest_count[c.digest]
            self.unread.discard(aid)
        for c in news:
            i = bisect.bisect_left(self.orders, c.order)
            self.orders.insert(i, c.order)
            self.kept.insert(i, c)
            self.articles.insert(i, c.article)
            self.ids.insert(i, c.article.id)
            self.claims[c.article.id] = c
            made.id_count[c.article.id] = made.digest_count[c.digest] = 1
        for rel in before:
            made.file_skips.pop(rel, None)
            made.uncached.pop(rel, None)
        for rel, row in now.items():
            if row[2]:
                made.file_skips[rel] = list(row[2])
            if rel not in known_files:
                made.uncached[rel] = row
            self.unread.update(row[3])
            if not row[3]:
                self._with_text.append(rel)
        base, self.base = self.base, None
        self.indexed_version = indexed.version
        return _Patched(self, frozenset(out_ids.keys() | in_ids.keys()), base)

    def loaded(self, walk_errors, source, max_file_bytes, max_pdf_pages, *,
               delta: frozenset[str] | None = None, base: str | None = None,
               skipped: list[Skipped] | None = None) -> Loaded:
        if skipped is None:
            by_file = self.made.file_skips
            skipped = [*walk_errors,
                       *itertools.chain.from_iterable(by_file[r] for r in sorted(by_file)),
                       *self.settle_skips]
        # this load's own lists and maps, not copies: a copy of each costs ~1 ms at
        # 100k articles, and more in the garbage collector's passes over the young
        # containers (~20 ms a build); so a Loaded made here holds until this
        # process's next load of the folder (builds of a folder run one at a time)
        return Loaded(self.articles, skipped, _View(self.claims, _FILE), source,
                      self.unread, max_file_bytes, max_pdf_pages, delta=delta, base=base,
                      _settled=self)


class _Made(NamedTuple):
    id_count: dict[str, int]  # claims of each id, over all files
    digest_count: dict[str, int]  # claims of each text
    file_skips: dict[str, list[Skipped]]  # the skips of each file that has any
    uncached: dict[str, tuple]  # rows of the files not kept in _Warm (PDF, DOCX)


@dataclass(frozen=True)
class _Patched:
    settled: _Settled
    delta: frozenset[str]
    base: str | None

    def loaded(self, walk_errors, source, max_file_bytes, max_pdf_pages) -> Loaded:
        return self.settled.loaded(walk_errors, source, max_file_bytes, max_pdf_pages,
                                   delta=self.delta, base=self.base)


Order = tuple[str, int]  # (file, place in the file): files come sorted


@dataclass(frozen=True)
class _Claim:
    """An article as read: its position in file order ((its file, its place in the
    file): files come sorted), where it is (``rel``, ``rel:<line>``, ``rel#<n>``) and
    its file."""

    order: Order
    article: Article
    where: str
    file: str
    digest: str  # text_hash of the article's text (identical texts are one article)


def _contested(claims: list[_Claim], keys: list[str]) -> dict[str, list[_Claim]]:
    """The claims sharing their key (``keys``, one per claim) with another, by key, in
    file order (a folder's ids and texts are mostly unique, so only these need ranking;
    counted in C, not in a loop per claim)."""
    if len(set(keys)) == len(keys):  # the usual case: a set is ~3x quicker than a Counter
        return {}
    counts = Counter(keys)
    many = {k for k, n in counts.items() if n > 1}
    contested: dict[str, list[_Claim]] = {}
    picked = list(map(many.__contains__, keys))  # the few contested ones, picked in C
    for c, k in zip(itertools.compress(claims, picked), itertools.compress(keys, picked)):
        contested.setdefault(k, []).append(c)
    return contested


def _without(claims: list[_Claim], losers: list[_Claim]) -> list[_Claim]:
    if not losers:
        return claims
    out = {id(c) for c in losers}
    return list(itertools.compress(claims, map(operator.not_, map(out.__contains__,
                                                                  map(id, claims)))))


def _settle_ids(claims: list[_Claim], indexed: Indexed
                ) -> tuple[list[_Claim], list[tuple[Order, Skipped]]]:
    """One claimant per id (the rank of :func:`load_sources`), in file order; the others
    as (order, Skipped)."""
    def rank(c: _Claim) -> tuple[int, Order]:
        aid = c.article.id
        if indexed.files.get(aid) == c.file:
            return 0, c.order
        if indexed.hashes.get(aid) == c.article.content_hash:
            return 1, c.order
        return 2, c.order

    late, losers = [], []
    for group in _contested(claims, list(map(_ID, map(_ARTICLE, claims)))).values():
        winner = min(group, key=rank)
        why = " (the file the index read it from)" if rank(winner)[0] < 2 else ""
        for c in group:
            if c is not winner:
                losers.append(c)
                late.append((c.order, Skipped(c.where, f"duplicate id of {winner.where}{why}")))
    return _without(claims, losers), late


def _settle_texts(claims: list[_Claim], indexed: Indexed
                  ) -> tuple[list[_Claim], list[tuple[Order, Skipped]]]:
    """One article per identical text: an id the index holds first, then file order."""
    def rank(c: _Claim) -> tuple[int, Order]:
        aid = c.article.id
        return (0 if aid in indexed.files or aid in indexed.hashes else 1), c.order

    copies, losers = [], []
    for group in _contested(claims, list(map(operator.attrgetter("digest"), claims))).values():
        winner = min(group, key=rank)
        for c in group:
            if c is not winner:
                losers.append(c)
                copies.append((c.order, Skipped(c.where, f"duplicate of {winner.article.id}")))
    return _without(claims, losers), copies


class SourceCache:
    """What each file of a source folder held when last read, keyed by its relative path
    and checked by size, modification time (ns) and inode, as make and git do: an
    unchanged file is not read again (issue 26: a build of one new article among 100k
    costs a directory walk, not 100k reads). Kept in SQLite (``<index>/.sources.sqlite``)
    so that a build writes only the rows of files that changed. Holds, per file, its
    articles without their texts (id, title, source, url, published, author, pages,
    file date, date source, content hash, where, text digest) and its skips. Entries
    read with other limits (file size, PDF pages) or by another loader version do not
    count. PDF and DOCX files are not kept here (their parsed texts have their own cache,
    keyed by their bytes).

    A process that builds again (``--watch``, ``--poll``, the server) also keeps what
    it decoded (:meth:`warm`): the next build neither reads the SQLite rows nor decodes
    them, as long as the file is as this process left it (another process's build, or
    a damaged file, drops that). Not thread-safe; one build uses it at a time (the
    build lock)."""

    VERSION = 1  # bump when the loaders read a file differently

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.path = Path(path)
        self._puts: list[tuple[str, str, str]] = []
        self._rows: dict[str, tuple[str, str]] | None = None
        self._warm = _warm_of(self.path)
        try:
            self._con = sqlite3.connect(self.path)
            self._con.execute("CREATE TABLE IF NOT EXISTS files (rel TEXT PRIMARY KEY,"
                              " key TEXT NOT NULL, entry TEXT NOT NULL)")
            if self._warm is None:
                # one read of every row (a query per file cost a fifth of a 10k-file build)
                self._rows = {r: (k, e) for r, k, e in
                              self._con.execute("SELECT rel, key, entry FROM files")}
        except sqlite3.Error:  # a damaged or unwritable cache: read every file
            self._con, self._warm = None, None

    def warm(self, settings: tuple) -> "_Warm | None":
        """What this process remembers of the folder for files read with ``settings``
        (a new, empty memory when it holds none that it can trust), or None without
        a usable cache file."""
        if self._con is None:
            return None
        if self._warm is None or self._warm.settings != settings:
            self._warm = _Warm(settings)
        return self._warm

    @staticmethod
    def key(stat: tuple[int, int, int], settings: tuple) -> str:
        """A file's cache key: its (size, modification time ns, inode), the limits it
        was read with and this cache's version."""
        size, mtime_ns, ino = stat
        return f"{SourceCache.VERSION}:{size}:{mtime_ns}:{ino}:{settings}"

    def get(self, rel: str, key: str):
        """(located stubs [(article, where, digest)], skips) of a file whose entry has
        ``key`` (:meth:`key` of its stat taken before reading), or None."""
        if self._rows is not None:
            row = self._rows.get(rel)
        elif self._con is not None:
            row = self._con.execute("SELECT key, entry FROM files WHERE rel = ?",
                                    (rel,)).fetchone()
        else:
            row = None
        if row is None or row[0] != key:
            return None
        try:
            entry = json.loads(row[1])
        except ValueError:
            return None
        located = [(Article(id=a[0], title=a[1], text="", source=a[2], url=a[3],
                            published=a[4], author=a[5], content_hash=a[6],
                            pages=tuple(a[7]), file_date=a[8], date_source=a[9]), a[10], a[11])
                   for a in entry["articles"]]
        return located, [Skipped(p, r) for p, r in entry["skipped"]]

    def put(self, rel: str, key: str, located, skipped) -> None:
        """Remember what the file ``rel`` held when its stat gave ``key`` (taken before
        it was read: a file changed while being read gets a new key next time)."""
        entry = {"articles": [[a.id, a.title, a.source, a.url, a.published, a.author,
                               a.content_hash, list(a.pages), a.file_date, a.date_source,
                               where, digest] for a, where, digest in located],
                 "skipped": [[s.path, s.reason] for s in skipped]}
        self._puts.append((rel, key, json.dumps(entry, ensure_ascii=False)))

    def remember(self, rel: str, fstat: tuple, claims: list, skipped: list,
                 read: bool) -> None:
        """Keep a file's claims and skips in this process (as text-less stubs when
        ``read``: its articles' texts are read again only if needed)."""
        if self._warm is None:
            return
        if read:
            claims = [replace(c, article=replace(c.article, text="")) for c in claims]
        self._warm.files[rel] = (fstat, claims, list(skipped),
                                 tuple(c.article.id for c in claims))

    def keep_only(self, rels: "Collection[str]", gone: "Collection[str] | None" = None
                  ) -> None:
        """Write what was read, and forget files no longer in the folder (a cache: when
        that fails, e.g. on a full disk, the next build reads those files again).
        ``gone``: the files that may have left (default: any held not in ``rels``)."""
        import sqlite3

        puts, self._puts = self._puts, []
        if self._con is None:
            return
        held = self._rows if self._rows is not None else self._warm.files if \
            self._warm is not None else {}
        gone = list(itertools.filterfalse(rels.__contains__, held if gone is None else
                                          [r for r in gone if r in held]))  # in C
        try:
            self._con.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", puts)
            self._con.executemany("DELETE FROM files WHERE rel = ?", [(r,) for r in gone])
            self._con.commit()
        except sqlite3.Error:
            try:
                self._con.rollback()
            except sqlite3.Error:
                pass
            _forget_warm(self.path)
            self._warm = None
            return
        if self._warm is not None:
            for r in gone:
                self._warm.files.pop(r, None)
            _keep_warm(self.path, self._warm)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


# -- what a process keeps of a folder between builds (SourceCache.warm) --------------

@dataclass
class _Warm:
    """A source folder as this process last loaded it with ``settings``: each cached
    file's (stat, claims, skips, ids of text-less articles), and the folder's listing
    (None until a load that walked it ends)."""

    settings: tuple
    files: dict[str, tuple] = field(default_factory=dict)
    folder: "_Folder | None" = None
    settled: "_Settled | None" = None  # the last load's outcome, to patch
    stat: tuple | None = None  # the cache file's (size, mtime ns, inode) when it was kept


_WARM: dict[str, _Warm] = {}  # cache file -> its _Warm; a few folders per process
_WARM_MAX = 4
_warm_lock = threading.Lock()


def _file_stat(path: Path) -> tuple | None:
    try:
        return _stat_key(os.stat(path))
    except OSError:
        return None


def _warm_of(path: Path) -> "_Warm | None":
    """The _Warm kept for the cache file ``path`` when the file is as this process left
    it, else None (and it is dropped)."""
    key = os.path.realpath(path)
    with _warm_lock:
        warm = _WARM.get(key)
        if warm is None:
            return None
        if warm.stat is None or warm.stat != _file_stat(path):
            del _WARM[key]
            return None
        return warm


def _keep_warm(path: Path, warm: _Warm) -> None:
    warm.stat = _file_stat(path)
    key = os.path.realpath(path)
    with _warm_lock:
        _WARM.pop(key, None)
        _WARM[key] = warm
        while len(_WARM) > _WARM_MAX:
            del _WARM[next(iter(_WARM))]


def prepare_patches() -> None:
    """Ready what this process keeps of each folder for patching (:attr:`_Settled.made`):
    for a process that builds again, after a build that walked the folder."""
    with _warm_lock:
        kept = [w.settled for w in _WARM.values() if w.settled is not None]
    for settled in kept:
        settled.made  # noqa: B018 - made now


def _forget_warm(path: Path) -> None:
    with _warm_lock:
        _WARM.pop(os.path.realpath(path), None)


class _Folder:
    """A source folder's listing as :func:`_walk` gives it, kept current from the paths a
    watcher reports changed (:meth:`update`) instead of walking the folder again."""

    def __init__(self, walked: list[tuple[str, str, tuple | None]],
                 errors: list[Skipped]) -> None:
        self._rels = [rel for rel, _, _ in walked]  # sorted
        self._entries = {item[0]: item for item in walked}
        self.errors = list(errors)
        self._dropped: set[str] = set()
        self.gone: set[str] = set()  # the files the last update found gone

    def walked(self) -> list[tuple[str, str, tuple | None]]:
        return list(map(self._entries.__getitem__, self._rels))

    def update(self, source: Path, changed: "Sequence[str | os.PathLike]"
               ) -> set[str] | None:
        """Look again at each of ``changed`` (files or folders; gone ones too). Returns
        the files listed now that were looked at (None: the whole folder was)."""
        touched: set[str] | None = set()
        self._dropped = set()
        for path in dict.fromkeys(os.fspath(p) for p in changed):
            rel = _rel_under(source, path)
            if rel is None:
                continue
            if rel == "":  # the folder itself: walk it all again
                walked, errors = _walk(source)
                self.__init__(walked, errors)
                touched = None
                continue
            self._drop(rel)
            full = os.path.join(os.fspath(source), rel)
            if os.path.isdir(full):
                walked, errors = _walk(Path(full))
                for sub, p, fstat in walked:
                    self._add(f"{rel}/{sub}", p, fstat)
                    if touched is not None:
                        touched.add(f"{rel}/{sub}")
                self.errors += [Skipped(f"{rel}/{e.path}", e.reason) for e in errors]
                self.errors.sort(key=lambda e: e.path)
                continue
            if not _readable_name(rel.rsplit("/", 1)[-1]):
                continue
            try:
                st = os.stat(full)
            except OSError:
                continue  # gone
            if stat.S_ISREG(st.st_mode):
                self._add(rel, full, _stat_key(st))
                if touched is not None:
                    touched.add(rel)
        # a later path may have dropped one (a folder walked again without it); (a set
        # operation with the keys view would iterate all 100k of them)
        self.gone = {r for r in self._dropped if r not in self._entries}
        return None if touched is None else {r for r in touched if r in self._entries}

    def rels(self) -> list[str]:
        """The files' ids, in :meth:`walked` order (shared: do not modify)."""
        return self._rels

    def names(self) -> "Collection[str]":
        """The files' ids, as a view to test membership (no copy)."""
        return self._entries.keys()

    def entry(self, rel: str) -> tuple[str, str, tuple | None]:
        return self._entries[rel]

    def _add(self, rel: str, path: str, fstat: tuple | None) -> None:
        if rel not in self._entries:
            bisect.insort(self._rels, rel)
        self._entries[rel] = (rel, path, fstat)

    def _drop(self, rel: str) -> None:
        """Forget ``rel`` and everything under ``rel/`` (in sorted order those lie
        between ``rel/`` and ``rel0``: "0" follows "/")."""
        rels = self._rels
        i = bisect.bisect_left(rels, rel)
        if i < len(rels) and rels[i] == rel:
            del rels[i]
            self._entries.pop(rel, None)
            self._dropped.add(rel)
        lo, hi = bisect.bisect_left(rels, rel + "/"), bisect.bisect_left(rels, rel + "0")
        for r in rels[lo:hi]:
            self._entries.pop(r, None)
            self._dropped.add(r)
        del rels[lo:hi]
        self.errors = [e for e in self.errors
                       if e.path != rel + "/" and not e.path.startswith(rel + "/")]


def _rel_under(source: Path, path: str) -> str | None:
    """``path``'s id relative to ``source`` (POSIX; "" for ``source`` itself), or None
    when it is not under ``source`` or is hidden (a part starting with ".")."""
    src = os.fspath(source)
    try:
        rel = os.path.relpath(path, src)
    except ValueError:
        return None
    if rel.startswith(".."):
        try:
            rel = os.path.relpath(os.path.realpath(path), os.path.realpath(src))
        except ValueError:
            return None
        if rel.startswith(".."):
            return None
    if rel == ".":
        return ""
    parts = Path(rel).parts
    if any(part.startswith(".") for part in parts):
        return None
    return "/".join(parts)
