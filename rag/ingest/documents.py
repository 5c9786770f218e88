"""PDF and DOCX bytes -> :class:`Document`: text, page table and metadata.

Both readers return the text of every page joined with ``"\\n\\n"``, and ``pages``, the
offset in ``text`` where each page starts (the first 0, ascending), so
``text[pages[i]:pages[i + 1]]`` is page ``i + 1`` followed by the separator. Each page's
text is normalised like every article text (:func:`normalize_page`: ``\\r\\n`` and ``\\r``
become ``\\n``, NULs and form feeds are removed, trailing whitespace is stripped); nothing
else is rewritten, so every offset built on ``text`` stays exact. Empty pages keep their
place (a page number stays the printed one); empty pages at the very end are dropped.

* **PDF** (:func:`read_pdf`) is read with pypdfium2 (Google's PDFium), chosen by
  measurement (``python -m benchmarks.pdf_readers``): the best text and reading order of
  the three candidates and 15-30x faster than pypdf and pdfminer.six. PDFium joins a line
  that ends in a hyphen to the next one and marks the hyphen with U+0002; it cannot tell a
  hyphenation from a real hyphen (``well-known``), so the mark is shown as the printed
  ``-`` and no word is rejoined. The page count is checked before any text is read.
  No OCR: a PDF without a text layer is refused. PDFium is not thread-safe; one lock
  serialises every use of it in this process.
* **DOCX** (:func:`read_docx`) is read straight from ``word/document.xml`` with a defused
  XML parser (a DTD or entity declaration refuses the file), after the zip's declared
  sizes are checked (no entry is decompressed before). Paragraphs in document order, one
  a line (empty ones dropped), table cells included; headers, footers, footnotes and
  comments are not. Page starts come from explicit page breaks (``w:br w:type="page"``,
  a section starting on a new page) and from the breaks Word recorded when it last laid
  the document out (``w:lastRenderedPageBreak``, ``w:pageBreakBefore``; one right after
  another break, with nothing between, is the same break). A DOCX with none of these has
  no page numbers: ``pages == ()``.

Metadata: ``title`` and ``author`` from the document information (PDF Info dictionary,
DOCX ``docProps/core.xml``), ``""`` when absent; ``file_date`` is the creation date
(``YYYY-MM-DD``: PDF ``CreationDate``, DOCX ``dcterms:created``) or None. It is the
file's date, not a publication date (issue 24: fpdf stamps the moment it ran, python-docx
keeps its template's 2013-12-23, a scan or an export gets the day it was made), so it
never becomes ``Article.published``: the article keeps it as ``file_date``, shown as
"file created ..." and never matched by a date filter. A publication date a document
states in its text or in custom properties is not read.

Problems raise :class:`Unreadable`, whose message is a reason a person can act on
("encrypted PDF (password protected)", "too many pages (10000 > 2000 limit)", "zip bomb?
...", "damaged DOCX: ..."). Heavy libraries are imported inside the readers.
"""

from __future__ import annotations

import datetime
import io
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import zipfile

MAX_PDF_PAGES = 2000
MAX_DOCX_BYTES = 200 * 1024 * 1024  # total uncompressed size of a DOCX's zip entries
MAX_ZIP_RATIO = 100  # an entry unpacking to more than this times its packed size ...
_RATIO_MIN_BYTES = 1024 * 1024  # ... and to more than this is a zip bomb
MAX_ZIP_ENTRIES = 10_000
_CORE_MAX_BYTES = 1024 * 1024  # docProps/core.xml is read only when at most this large

_SURROGATES = re.compile("[\ud800-\udfff]")
_PDF_DATE = re.compile(r"(?:D:)?(\d{4})(\d{2})(\d{2})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_PDFIUM_LOCK = threading.Lock()  # PDFium must not be called from two threads at once

_W_NS = ("http://schemas.openxmlformats.org/wordprocessingml/2006/main",
         "http://purl.oclc.org/ooxml/wordprocessingml/main")  # transitional, strict
_MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_DC_NS = "http://purl.org/dc/elements/1.1/"
_DCTERMS_NS = "http://purl.org/dc/terms/"
# WordprocessingML elements whose subtree holds no text to read: formatting, deleted
# text, field instructions
_UNREAD = frozenset(("rPr", "tblPr", "trPr", "tcPr", "sdtPr", "numPr", "delText",
                     "instrText", "rPrChange", "pPrChange"))
_FALSE = ("0", "false", "off")


class Unreadable(ValueError):
    """The PDF or DOCX cannot be used; ``str(exc)`` is the reason, for a person."""


@dataclass(frozen=True)
class Document:
    """What a PDF or DOCX holds: ``text`` (pages joined with ``"\\n\\n"``), ``pages``
    (start offset of each page in ``text``: first 0, ascending; ``()`` without page
    information) and metadata (``""`` / None when absent); ``file_date`` is the
    file's creation date, not a publication date (see the module docstring)."""

    title: str
    author: str
    file_date: str | None
    text: str
    pages: tuple[int, ...]


def normalize_page(text: str) -> str:
    """One page's text as stored: the article text contract of
    :func:`rag.ingest.loaders.normalize_text` (``\\r\\n``/``\\r`` -> ``\\n``, NULs removed,
    lone surrogates -> U+FFFD, trailing whitespace stripped), and form feeds removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").replace("\f", "")
    return _SURROGATES.sub("\ufffd", text).rstrip()


_LIST_ITEM = re.compile(r"^\s*(?:[-\u2022\u2013*\u25aa\u25cf]|\d{1,3}[.)])\s")
# A line at least this share of the page's longest line is taken as wrapped by the layout.
_FULL_LINE = 0.7
# a line ending a sentence keeps its break: it may end a paragraph, and the sentence
# splitter needs no join there
_SENTENCE_END = re.compile(r"[.!?:…][\"'”’)\]]*\s*$")


def reflow(page: str) -> str:
    """A PDF page's layout line breaks turned into spaces: a line that runs (nearly) the
    width of the page's full lines (70 % of the 80th percentile of its line lengths),
    does not end a sentence, and is followed by a non-empty line that does not start a
    list item, continues on that line. Short lines (headings, the last line of a
    paragraph, list items), lines that end a sentence and blank lines keep their break.
    Replaces one character ("\n" -> " ") each time, so the length is kept.

    Why: sentences are split at line breaks first (rag.ingest.chunking), so a quote from
    an unreflowed PDF stopped at the end of a printed line. On the two seed-article PDFs
    of tests/data (LibreOffice: justified; two columns, hyphenated) the sentences that
    are exactly one of the article's 47 went from 19 and 8 to 46 and 26 (the rest of the
    two-column ones hold a hyphenated line end); test_documents checks it.
    """
    lines = page.split("\n")
    lengths = sorted(len(x.rstrip()) for x in lines if x.strip())
    if not lengths:
        return page
    # the width of a full line: most lines of running text are full, a title across two
    # columns is not typical (so not the maximum)
    widest = lengths[int(0.8 * (len(lengths) - 1))]
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i == len(lines) - 1:
            break
        nxt = lines[i + 1]
        wrapped = (len(line.rstrip()) >= _FULL_LINE * widest and nxt.strip()
                   and not _LIST_ITEM.match(nxt) and line.strip()
                   and not _SENTENCE_END.search(line))
        out.append(" " if wrapped else "\n")
    return "".join(out)


def join_pages(page_texts: list[str]) -> tuple[str, tuple[int, ...]]:
    """(text, page starts) of normalised pages joined with ``"\\n\\n"``; empty pages at
    the end are dropped (so the text has no trailing whitespace)."""
    texts = [normalize_page(t) for t in page_texts]
    while texts and not texts[-1].strip():
        texts.pop()
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 2
    return "\n\n".join(texts), tuple(starts)


def _date(value: str | None, pattern: re.Pattern[str]) -> str | None:
    """``YYYY-MM-DD`` from the start of a PDF (``D:20240102...``) or ISO date, else None."""
    match = pattern.match((value or "").strip())
    if not match:
        return None
    try:
        return datetime.date(*(int(g) for g in match.groups())).isoformat()
    except ValueError:
        return None


# ----------------------------------------------------------------------------- PDF


def read_pdf(data: bytes, *, max_pages: int = MAX_PDF_PAGES) -> Document:
    """A PDF's text, page starts and metadata (see the module docstring).

    Raises :class:`Unreadable`: "encrypted PDF (password protected)" (a PDF that opens
    without a password, only restricting printing or copying, is read), "too many pages
    (N > max_pages limit)" (checked before any text is read), "no text layer (a scanned
    PDF? OCR is not supported)" when no page has text, "damaged PDF: ..." otherwise.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(bytes(data))
        except pdfium.PdfiumError as exc:
            code = getattr(exc, "err_code", None)
            if code == pdfium_c.FPDF_ERR_PASSWORD:
                raise Unreadable("encrypted PDF (password protected)") from None
            if code == pdfium_c.FPDF_ERR_SECURITY:
                raise Unreadable("encrypted PDF (unsupported security handler)") from None
            why = {pdfium_c.FPDF_ERR_FORMAT: "not a PDF, or corrupted",
                   pdfium_c.FPDF_ERR_FILE: "cannot be opened",
                   pdfium_c.FPDF_ERR_PAGE: "page tree or content error",
                   pdfium_c.FPDF_ERR_SUCCESS: "no pages"}.get(code, "unknown error")
            raise Unreadable(f"damaged PDF: {why}") from None
        try:
            n_pages = len(pdf)
            if n_pages > max_pages:
                raise Unreadable(f"too many pages ({n_pages} > {max_pages} limit)")
            meta = pdf.get_metadata_dict()
            page_texts = []
            for i in range(n_pages):
                page = pdf.get_page(i)
                try:
                    textpage = page.get_textpage()
                    try:
                        page_texts.append(textpage.get_text_bounded())
                    finally:
                        textpage.close()
                finally:
                    page.close()
        except pdfium.PdfiumError as exc:
            raise Unreadable(f"damaged PDF: {exc}") from None
        finally:
            pdf.close()
    # U+0002: PDFium's mark of a hyphen at a line end (the line break is removed)
    text, pages = join_pages([reflow(normalize_page(t.replace("\x02", "-")))
                              for t in page_texts])
    if not text.strip():
        raise Unreadable("no text layer (a scanned PDF? OCR is not supported)")
    return Document(title=_meta(meta.get("Title")), author=_meta(meta.get("Author")),
                    file_date=_date(meta.get("CreationDate"), _PDF_DATE), text=text,
                    pages=pages)


def _meta(value: str | None) -> str:
    return " ".join(_SURROGATES.sub("\ufffd", (value or "").replace("\x00", "")).split())


# ----------------------------------------------------------------------------- DOCX


def read_docx(data: bytes, *, max_bytes: int = MAX_DOCX_BYTES) -> Document:
    """A DOCX's text, page starts (``()`` without page breaks) and metadata (see the module
    docstring).

    Before anything is decompressed, every zip entry's declared size is checked: more than
    ``max_bytes`` in all, more than :data:`MAX_ZIP_ENTRIES` entries, or an entry over
    1 MB that unpacks to more than :data:`MAX_ZIP_RATIO` times its packed size raises
    "zip bomb? ..." (the zip module never unpacks more than an entry declares).
    Raises :class:`Unreadable`: "damaged DOCX: ..." (not a zip, no ``word/document.xml``,
    invalid XML), "unsafe DOCX: ..." (a DTD or entity declaration), "zip bomb? ...".
    """
    import zipfile
    import zlib
    from xml.etree.ElementTree import ParseError

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        hint = " (an old .doc or a password-protected file?)" \
            if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" else ""
        raise Unreadable(f"damaged DOCX: not a zip archive{hint}") from None
    with archive:
        infos = archive.infolist()
        _check_zip(infos, max_bytes)
        names = {info.filename: info for info in infos}
        body = names.get("word/document.xml")
        if body is None:
            raise Unreadable("damaged DOCX: no word/document.xml")
        try:
            with archive.open(body) as fh:
                page_texts, has_pages = _docx_pages(fh)
            core = names.get("docProps/core.xml")
            meta = {}
            if core is not None and core.file_size <= _CORE_MAX_BYTES:
                meta = _docx_core(archive.read(core))
        except ParseError as exc:
            raise Unreadable(f"damaged DOCX: invalid XML in word/document.xml ({exc})") from None
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError,
                NotImplementedError) as exc:  # bad CRC or data, encrypted or odd entries
            raise Unreadable(f"damaged DOCX: {exc}") from None
    text, pages = join_pages(page_texts)
    return Document(title=meta.get("title", ""), author=meta.get("creator", ""),
                    file_date=_date(meta.get("created"), _ISO_DATE), text=text,
                    pages=pages if has_pages else ())


def _check_zip(infos: list[zipfile.ZipInfo], max_bytes: int) -> None:
    if len(infos) > MAX_ZIP_ENTRIES:
        raise Unreadable(f"zip bomb? {len(infos)} entries (> {MAX_ZIP_ENTRIES} limit)")
    total = 0
    for info in infos:
        total += info.file_size
        if total > max_bytes:
            raise Unreadable(f"zip bomb? unpacks to more than {max_bytes / 2**20:.0f} MB "
                             f"({info.filename}: {info.file_size / 2**20:.0f} MB)")
        if info.file_size > _RATIO_MIN_BYTES and \
                info.file_size > MAX_ZIP_RATIO * max(1, info.compress_size):
            ratio = info.file_size / max(1, info.compress_size)
            raise Unreadable(f"zip bomb? {info.filename} unpacks {ratio:.0f}x "
                             f"(> {MAX_ZIP_RATIO}x limit)")


def _unsafe(exc: Exception) -> Unreadable:
    return Unreadable(f"unsafe DOCX: XML with a DTD or entity declaration refused ({exc})")


def _docx_core(xml: bytes) -> dict[str, str]:
    """title, creator, created from ``docProps/core.xml``; {} when it is not valid XML."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        root = DET.fromstring(xml, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise _unsafe(exc) from None
    except ParseError:
        return {}
    out = {}
    for ns, name in ((_DC_NS, "title"), (_DC_NS, "creator"), (_DCTERMS_NS, "created")):
        el = root.find(f"{{{ns}}}{name}")
        if el is not None and el.text:
            out[name] = _meta(el.text)
    return out


def _docx_pages(fh: io.IOBase) -> tuple[list[str], bool]:
    """Page texts of a ``word/document.xml`` stream, and whether it marks any page break.

    Streams the XML (elements are dropped once read). A hard break (``w:br
    w:type="page"``, a section break that starts a new page) always starts a page; a
    recorded one (``w:lastRenderedPageBreak``, ``w:pageBreakBefore``) only when text or a
    drawing came since the previous break. Of ``mc:AlternateContent`` only the first
    choice is read (the others hold the same content for older readers).
    """
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    pages: list[list[str]] = [[]]
    paras: list[list[str]] = []  # open paragraphs (text boxes nest them), innermost last
    content = False  # text or a drawing since the last page break
    has_breaks = False
    skip = 0  # depth inside a subtree that is not read
    stack: list = []  # open elements
    alternates: list[bool] = []  # per open mc:AlternateContent: a branch was taken
    section_break: list[bool] = []  # per open paragraph: its w:sectPr starts a new page

    def page_break(hard: bool) -> None:
        nonlocal content, has_breaks
        has_breaks = True
        if not hard and not content:
            return
        if paras and paras[-1]:
            pages[-1].append("".join(paras[-1]))
            paras[-1].clear()
        pages.append([])
        content = False

    def add(s: str) -> None:
        nonlocal content
        if paras:
            paras[-1].append(s)
        else:  # text outside a paragraph (not valid WordprocessingML): keep it anyway
            pages[-1].append(s)
        content = content or bool(s.strip())

    try:
        for event, el in DET.iterparse(fh, events=("start", "end"), forbid_dtd=True):
            ns, _, tag = el.tag[1:].partition("}") if el.tag[:1] == "{" else ("", "", el.tag)
            if event == "start":
                parent = _local(stack[-1]) if stack else ""
                stack.append(el)
                if skip:
                    skip += 1
                elif ns == _MC_NS and tag == "AlternateContent":
                    alternates.append(False)
                elif ns == _MC_NS and tag in ("Choice", "Fallback"):
                    if alternates and alternates[-1]:
                        skip = 1
                    elif alternates:
                        alternates[-1] = True
                elif ns not in _W_NS:
                    continue
                elif tag in _UNREAD:
                    skip = 1
                elif tag == "p":
                    paras.append([])
                    section_break.append(False)
                elif tag == "sectPr" and parent == "pPr" and section_break:
                    section_break[-1] = True  # a section ends here; without w:type: new page
                continue
            stack.pop()
            parent = _local(stack[-1]) if stack else ""
            if skip:
                skip -= 1
            elif ns == _MC_NS and tag == "AlternateContent":
                alternates.pop()
            elif ns in _W_NS:
                if tag == "t":
                    add(el.text or "")
                elif tag in ("tab", "ptab") and parent == "r":
                    add("\t")
                elif tag == "cr" or (tag == "br" and _attr(el, "type") != "page"):
                    add("\n")
                elif tag == "br":
                    page_break(hard=True)
                elif tag == "noBreakHyphen":
                    add("-")
                elif tag == "lastRenderedPageBreak":
                    page_break(hard=False)
                elif tag == "pageBreakBefore" and _attr(el, "val") not in _FALSE:
                    page_break(hard=False)
                elif tag in ("drawing", "pict", "object"):
                    content = True
                elif tag == "type" and parent == "sectPr" and section_break and \
                        len(stack) >= 2 and _local(stack[-2]) == "pPr":
                    section_break[-1] = _attr(el, "val") not in ("continuous", "nextColumn")
                elif tag == "p" and paras:
                    text = "".join(paras.pop())
                    if text.strip():
                        pages[-1].append(text)
                    if section_break.pop():
                        page_break(hard=True)
            if stack and not skip:
                stack[-1].remove(el)  # read: free it (its children went before it)
    except DefusedXmlException as exc:
        raise _unsafe(exc) from None
    return ["\n".join(p) for p in pages], has_breaks


def _local(el) -> str:
    return el.tag.rpartition("}")[2]


def _attr(el, name: str) -> str | None:
    """The value of the WordprocessingML attribute ``name`` (either namespace)."""
    for ns in _W_NS:
        value = el.get(f"{{{ns}}}{name}")
        if value is not None:
            return value
    return None
