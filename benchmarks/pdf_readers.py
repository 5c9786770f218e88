"""``python -m benchmarks.pdf_readers``: which library reads PDF text best, measured.

Candidates: pypdf, pdfminer.six, pypdfium2 (PyMuPDF is AGPL and left out). The script
writes PDFs from known real text, the seed article (``seeds/``) and, when
``../shared/corpus/news`` exists, a few BBC news articles (skipped cleanly when it does
not), with several real writers:

* fpdf2 (justified, an embedded TrueType font),
* reportlab (justified Times, and a two-column layout),
* LibreOffice (``soffice --headless``, when installed) from a DOCX made with python-docx:
  justified, two columns, justified with automatic hyphenation (needs Debian's
  ``hyphen-en-us``), and justified in DejaVu Serif (a font with ligatures).

pypdfium2 marks a hyphen at a line end with U+0002 and joins the two lines, for soft
(hyphenation) and real (``well-known``) hyphens alike; it is measured raw, with the mark
shown as the printed ``-``, and with the mark dropped (the word rejoined).

The known text is cut into pages at paragraph boundaries (explicit page breaks, each page
small enough to fit), so the true text of every page is known. Per library and PDF:

* ``f1``: word-level F1 of the whole text against the source (whitespace-normalised),
* ``order``: difflib ratio of the word sequences page by page (reading order; weighted
  by words),
* ``pages``: pages whose extracted text matches their true page (ratio >= 0.9) / pages,
* ``lig``: ligature code points (U+FB00-FB06) in the output, ``brk``: words split by a
  line-end hyphen (or a U+0002 / soft-hyphen marker) that the library did not rejoin,
* ``ms``: median wall time of ``--repeats`` full extractions (all libraries in one run).

Then real PDFs found on this machine (``--real``, default the TeX-made manuals under
``/usr/share/doc`` when present; no source text, so only pages with text, characters,
ligatures, hyphen breaks and speed), the time to count the pages of a 10,000-page PDF,
and what each library does with a truncated, a garbage and an encrypted file.

The table is printed and saved under ``benchmarks/results/`` (``--no-save`` to skip).
Needs ``pip install pypdf pdfminer.six pypdfium2 fpdf2 reportlab python-docx``.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
PAGE_CHARS = 2600  # at most this many source characters per page (fits every layout below)
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
REAL_DEFAULT = ("/usr/share/doc/libtasn1-doc/libtasn1.pdf",
                "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
_LIGATURES = re.compile("[\ufb00-\ufb06]")
_BREAK_MARKS = re.compile("[\x02\xad]")


# ----------------------------------------------------------------------------- sources


def sources(n_news: int) -> dict[str, list[list[str]]]:
    """name -> pages, each page a list of paragraphs (non-empty lines of the source)."""
    out = {}
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        out["seed"] = paginate(path.read_text(encoding="utf-8"))
        break
    news = SHARED / "corpus" / "news" / "articles.jsonl"
    if n_news and news.is_file():
        with open(news, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        step = max(1, len(rows) // n_news)
        text = "\n".join(r["text"] for r in rows[::step][:n_news])
        out["news"] = paginate(text)
    elif n_news:
        print(f"({news} not found: news articles skipped)")
    return out


def paginate(text: str, limit: int = PAGE_CHARS) -> list[list[str]]:
    pages: list[list[str]] = [[]]
    size = 0
    for para in (line.strip() for line in text.splitlines()):
        if not para:
            continue
        if pages[-1] and size + len(para) > limit:
            pages.append([])
            size = 0
        pages[-1].append(para)
        size += len(para) + 1
    return pages


# ----------------------------------------------------------------------------- writers


def write_fpdf2(pages: list[list[str]], out: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("serif", "", str(FONT))
    pdf.set_font("serif", size=10)
    pdf.set_auto_page_break(True, margin=15)
    for page in pages:
        pdf.add_page()
        for para in page:
            pdf.multi_cell(0, 4.6, para, align="J", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
    pdf.output(str(out))


def _reportlab(pages: list[list[str]], out: Path, *, columns: int) -> None:
    from reportlab.lib.enums import TA_JUSTIFY
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import BaseDocTemplate, Frame, PageBreak, PageTemplate, Paragraph

    style = ParagraphStyle("body", fontName="Times-Roman", fontSize=10, leading=12,
                           alignment=TA_JUSTIFY, spaceAfter=4)
    margin, gap = 18 * mm, 6 * mm
    width = (A4[0] - 2 * margin - gap * (columns - 1)) / columns
    height = A4[1] - 2 * margin
    frames = [Frame(margin + i * (width + gap), margin, width, height, id=f"c{i}")
              for i in range(columns)]
    doc = BaseDocTemplate(str(out), pagesize=A4, title="", author="")
    doc.addPageTemplates([PageTemplate(id="p", frames=frames)])
    story: list = []
    for n, page in enumerate(pages):
        if n:
            story.append(PageBreak())
        story += [Paragraph(escape(para), style) for para in page]
    doc.build(story)


def write_reportlab(pages: list[list[str]], out: Path) -> None:
    _reportlab(pages, out, columns=1)


def write_reportlab_2col(pages: list[list[str]], out: Path) -> None:
    _reportlab(pages, out, columns=2)


def _docx(pages: list[list[str]], out: Path, *, columns: int = 1, hyphenate: bool = False,
          font: str = "Liberation Serif") -> None:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Pt

    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = font
    style.font.size = Pt(10)
    style.paragraph_format.space_after = Pt(3)
    for n, page in enumerate(pages):
        if n:
            doc.add_page_break()
        for para in page:
            doc.add_paragraph(para).alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    if columns > 1:
        cols = doc.sections[0]._sectPr.find(qn("w:cols"))
        if cols is None:
            cols = OxmlElement("w:cols")
            doc.sections[0]._sectPr.append(cols)
        cols.set(qn("w:num"), str(columns))
        cols.set(qn("w:space"), "340")
    if hyphenate:
        settings = doc.settings.element
        auto = OxmlElement("w:autoHyphenation")
        settings.insert(0, auto)
    doc.save(str(out))


LO_VARIANTS = {"lo": {}, "lo-2col": {"columns": 2}, "lo-hyph": {"hyphenate": True},
               "lo-dejavu": {"font": "DejaVu Serif"}}


def write_libreoffice(jobs: list[tuple[list[list[str]], Path, dict]]) -> list[Path]:
    """DOCX files made with python-docx, converted to PDF by one soffice run."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice or not jobs:
        return []
    folder = jobs[0][1].parent
    docx = []
    for pages, out, opts in jobs:
        path = out.with_suffix(".docx")
        _docx(pages, path, **opts)
        docx.append(path)
    profile = folder / "lo-profile"
    subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(folder), *map(str, docx)],
                   check=True, capture_output=True, timeout=600)
    return [out for _, out, _ in jobs if out.exists()]


# ----------------------------------------------------------------------------- readers


def read_pypdf(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def read_pdfminer(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    return ["".join(el.get_text() for el in layout if isinstance(el, LTTextContainer))
            for layout in extract_pages(io.BytesIO(data), laparams=LAParams())]


def read_pdfium(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        out = []
        for page in pdf:
            textpage = page.get_textpage()
            out.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return out
    finally:
        pdf.close()


def read_pdfium_dash(data: bytes) -> list[str]:
    """pypdfium2 with its line-end hyphen marker (U+0002) shown as the printed "-"."""
    return [t.replace("\x02", "-") for t in read_pdfium(data)]


def read_pdfium_join(data: bytes) -> list[str]:
    """pypdfium2 with its line-end hyphen marker dropped (the word rejoined)."""
    return [t.replace("\x02", "") for t in read_pdfium(data)]


READERS: dict[str, Callable[[bytes], list[str]]] = {
    "pypdf": read_pypdf, "pdfminer.six": read_pdfminer, "pypdfium2": read_pdfium,
    "pypdfium2 \\x02->-": read_pdfium_dash, "pypdfium2 \\x02->''": read_pdfium_join}


def count_pages(name: str, data: bytes) -> int:
    if name == "pypdf":
        from pypdf import PdfReader

        return len(PdfReader(io.BytesIO(data)).pages)
    if name == "pdfminer.six":
        from pdfminer.pdfdocument import PDFDocument
        from pdfminer.pdfinterp import resolve1
        from pdfminer.pdfparser import PDFParser

        doc = PDFDocument(PDFParser(io.BytesIO(data)))
        return int(resolve1(doc.catalog["Pages"])["Count"])
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return len(pdf)
    finally:
        pdf.close()


# ----------------------------------------------------------------------------- metrics


def words(text: str) -> list[str]:
    return text.split()


def f1(ref: list[str], out: list[str]) -> float:
    common = sum((collections.Counter(ref) & collections.Counter(out)).values())
    if not common:
        return 0.0
    p, r = common / len(out), common / len(ref)
    return 2 * p * r / (p + r)


def hyphen_breaks(out: list[str], vocab: set[str]) -> int:
    """Output words that are a fragment of a source word split at a line-end hyphen."""
    n = 0
    for i, w in enumerate(out):
        if _BREAK_MARKS.search(w):
            n += 1
        elif w.endswith("-") and w not in vocab and i + 1 < len(out):
            joined = w[:-1] + out[i + 1]
            if joined in vocab or joined.rstrip(".,;:!?”’\")") in vocab:
                n += 1
    return n


def score(pages: list[list[str]], got: list[str]) -> dict:
    truth = [words("\n".join(p)) for p in pages]
    out = [words(t) for t in got]
    vocab = {w for p in truth for w in p}
    flat_t = [w for p in truth for w in p]
    flat_o = [w for p in out for w in p]
    ok = 0
    weighted = 0.0
    for i, ref in enumerate(truth):
        mine = out[i] if i < len(out) else []
        ratio = difflib.SequenceMatcher(None, ref, mine, autojunk=False).ratio()
        ok += ratio >= 0.9
        weighted += ratio * len(ref)
    text = "".join(got)
    return {"f1": f1(flat_t, flat_o), "order": weighted / max(1, len(flat_t)),
            "pages": f"{ok}/{len(truth)}" + ("" if len(out) == len(truth) else f" (n={len(out)})"),
            "lig": len(_LIGATURES.findall(text)), "brk": hyphen_breaks(flat_o, vocab)}


def timed(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return result, statistics.median(times) * 1000


# ----------------------------------------------------------------------------- runs


def make_pdfs(texts: dict[str, list[list[str]]], folder: Path) -> dict[str, tuple[list, Path]]:
    made: dict[str, tuple[list, Path]] = {}
    writers = {"fpdf2": write_fpdf2, "reportlab": write_reportlab,
               "reportlab-2col": write_reportlab_2col}
    lo_jobs = []
    for tname, pages in texts.items():
        for wname, write in writers.items():
            out = folder / f"{tname}-{wname}.pdf"
            try:
                write(pages, out)
                made[f"{tname}/{wname}"] = (pages, out)
            except Exception as exc:  # noqa: BLE001 - a writer missing is reported, not fatal
                print(f"({wname} could not write {tname}: {exc!r})")
        for vname, opts in LO_VARIANTS.items():
            lo_jobs.append((pages, folder / f"{tname}-{vname}.pdf", opts, f"{tname}/{vname}"))
    try:
        done = set(write_libreoffice([(p, o, opts) for p, o, opts, _ in lo_jobs]))
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"(LibreOffice failed: {exc!r})")
        done = set()
    if not done:
        print("(LibreOffice not available: its PDFs skipped)")
    for pages, out, _, key in lo_jobs:
        if out in done:
            made[key] = (pages, out)
    return made


def known_text(made: dict, repeats: int) -> list[dict]:
    rows = []
    for key, (pages, path) in made.items():
        data = path.read_bytes()
        actual = count_pages("pypdfium2", data)
        note = "" if actual == len(pages) else f" (writer made {actual} pages)"
        for name, read in READERS.items():
            got, ms = timed(lambda: read(data), repeats)
            rows.append({"pdf": key + note, "library": name, **score(pages, got),
                         "ms": ms, "n_pages": len(pages)})
    return rows


def real_pdfs(paths: list[str], repeats: int) -> list[dict]:
    rows = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name, read in READERS.items():
            try:
                got, ms = timed(lambda: read(data), repeats)
            except Exception as exc:  # noqa: BLE001
                rows.append({"pdf": path.name, "library": name, "error": repr(exc)[:80]})
                continue
            text = "".join(got)
            out = words(text)
            breaks = sum(1 for i, w in enumerate(out[:-1])
                         if w.endswith("-") and len(w) > 2 and w[-2].isalpha()
                         and out[i + 1][:1].islower()) + len(_BREAK_MARKS.findall(text))
            rows.append({"pdf": f"{path.name} ({len(got)} p.)", "library": name,
                         "text pages": sum(1 for t in got if t.strip()), "chars": len(text),
                         "lig": len(_LIGATURES.findall(text)), "brk": breaks, "ms": ms})
    return rows


def big_and_broken(folder: Path, sample: Path | None, repeats: int) -> list[dict]:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(10_000):
        writer.add_blank_page(612, 792)
    buf = io.BytesIO()
    writer.write(buf)
    big = buf.getvalue()
    cases: dict[str, bytes] = {"garbage": b"%PDF-1.7\n" + os.urandom(4000)}
    if sample is not None:
        good = sample.read_bytes()
        cases["truncated (half)"] = good[: len(good) // 2]
        from pypdf import PdfReader

        enc = PdfWriter(clone_from=PdfReader(io.BytesIO(good)))
        enc.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
        buf = io.BytesIO()
        enc.write(buf)
        cases["encrypted (AES-256)"] = buf.getvalue()
    rows = []
    for name in ("pypdf", "pdfminer.six", "pypdfium2"):
        row: dict = {"library": name}
        n, ms = timed(lambda: count_pages(name, big), repeats)
        row["count 10k pages"] = f"{n} in {ms:.0f} ms"
        for case, data in cases.items():
            try:
                got = READERS[name](data)
                row[case] = f"no error: {sum(len(t) for t in got)} chars, {len(got)} pages"
            except Exception as exc:  # noqa: BLE001
                row[case] = f"{type(exc).__name__}: {str(exc)[:50]}"
        rows.append(row)
    return rows


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) and v <= 1 else (
            f"{v:.1f}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for name in READERS:
        mine = [r for r in rows if r["library"] == name]
        pages_ok = sum(int(r["pages"].split("/")[0]) for r in mine)
        pages_all = sum(r["n_pages"] for r in mine)
        out.append({"library": name, "mean f1": statistics.mean(r["f1"] for r in mine),
                    "min f1": min(r["f1"] for r in mine),
                    "mean order": statistics.mean(r["order"] for r in mine),
                    "min order": min(r["order"] for r in mine),
                    "pages ok": f"{pages_ok}/{pages_all}",
                    "lig": sum(r["lig"] for r in mine), "brk": sum(r["brk"] for r in mine),
                    "total ms": sum(r["ms"] for r in mine)})
    return out


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{n} {version(n)}" for n in ("pypdf", "pdfminer.six", "pypdfium2"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pdf_readers",
                                description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per PDF (median)")
    p.add_argument("--news", type=int, default=12, help="news articles (0: none)")
    p.add_argument("--real", nargs="*", default=list(REAL_DEFAULT), help="real PDFs to read")
    p.add_argument("--keep", type=Path, help="keep the generated PDFs in this folder")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    args = p.parse_args(argv)

    texts = sources(args.news)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        made = make_pdfs(texts, folder)
        known = known_text(made, args.repeats)
        real = real_pdfs(args.real, max(1, args.repeats // 2))
        sample = next((path for _, path in made.values()), None)
        broken = big_and_broken(folder, sample, 3)
    parts = [
        f"# PDF text libraries ({versions()}; Python {sys.version.split()[0]}, "
        f"{args.repeats} repeats, median)",
        "## Known text: summary over all generated PDFs",
        table(summary(known), ["library", "mean f1", "min f1", "mean order", "min order",
                               "pages ok", "lig", "brk", "total ms"]),
        "## Known text: per PDF",
        table(known, ["pdf", "library", "f1", "order", "pages", "lig", "brk", "ms"]),
    ]
    if real:
        parts += ["## Real PDFs on this machine (no source text)",
                  table(real, ["pdf", "library", "text pages", "chars", "lig", "brk", "ms",
                               "error"])]
    parts += ["## Page count of a 10,000-page PDF; broken and encrypted files",
              table(broken, list(broken[0].keys()))]
    report = "\n\n".join(parts)
    print(report)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (RESULTS / f"{stamp}-pdf_readers.md").write_text(report + "\n", encoding="utf-8")
        (RESULTS / f"{stamp}-pdf_readers.json").write_text(
            json.dumps({"known": known, "real": real, "broken": broken}, indent=1) + "\n",
            encoding="utf-8")
        print(f"\n(results in {RESULTS / stamp}-pdf_readers.md / .json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
