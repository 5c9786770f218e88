"""Issue 22, item 7: documents that decompress into gigabytes.

A PDF's FlateDecode content stream of spaces packs ~1,000:1 (a 2 MB PDF peaked at 3.1 GB
while PDFium read it), and a DOCX's ``word/document.xml`` may unpack 100:1 within the zip
checks (a 1.9 MB DOCX took 1.3 GB and 43 s). PDFs and DOCX files are now read in a child
process under an address-space and a CPU-time limit (``RAG_PARSE_MEMORY_MB``,
``RAG_PARSE_SECONDS``); a document over a limit is skipped with a reason naming it, and
what a document gave (text or refusal) is cached by its sha256 in ``<index>/.parsed``.

The bombs here are small on purpose: a 192 MB stream (190 KB of PDF) and 512 Ki nested
paragraphs (100 KB of DOCX), against a 96 MB limit. Read in-process, as before the fix,
they peak at about 420 MB and 200 MB, so the suite stays bounded even when the defence
is missing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import signal
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest

import rag
from rag.config import Config
from rag.ingest.documents import Unreadable, read_docx, read_pdf

from .conftest import run_build_cli

fpdf = pytest.importorskip("fpdf")
docx = pytest.importorskip("docx")

LIMIT_MB = 96
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MEMORY_REASON = (f"the document needs more than {LIMIT_MB} MB of memory to read "
                 "(RAG_PARSE_MEMORY_MB)")
GOOD_TEXT = ("Tidal power\n\nTidal power turns the energy of the tides into electricity. "
             "The first large tidal power station opened at La Rance in France in 1966.")
WIND_TEXT = "Wind power\n\nWind farms at sea grew fast in the North Sea after 2010."


# ----------------------------------------------------------------------------- builders


def pdf_bomb(mb: int = 192) -> bytes:
    """A one-page PDF whose content stream inflates to ``mb`` MB: a line of text, then
    spaces (written by hand: no PDF library makes such a stream)."""
    pack = zlib.compressobj(6)
    parts = [pack.compress(b"BT /F1 12 Tf 72 720 Td (Hello bomb) Tj ET\n")]
    spaces = b" " * (1 << 20)
    parts += [pack.compress(spaces) for _ in range(mb)]
    parts.append(pack.flush())
    stream = b"".join(parts)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
               + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def docx_bomb(levels: int = 512 * 1024) -> bytes:
    """A 100 KB DOCX whose word/document.xml (6 MB) nests ``levels`` paragraphs in one
    another (text boxes nest paragraphs; nothing limits how deep). Reading keeps every
    open element: about 340 bytes a level, 180 MB in all, for 10 characters of text. A
    comment with a random letter at one level in 16 keeps the packing ratio (about 57x)
    under the zip check's 100x, so only the memory limit stops it. (A bomb of text would
    do too, but a 48 MB article read before the fix made the build take 2.6 GB.)"""
    assert levels % 1024 == 0
    rnd = random.Random(5)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as fh:
            fh.write(f'<w:document xmlns:w="{W}"><w:body>'.encode())
            for _ in range(levels // 1024):
                fh.write(b"".join(b"<w:p><!--%c-->" % (97 + rnd.randrange(26))
                                  if rnd.randrange(16) == 0 else b"<w:p>"
                                  for _ in range(1024)))
            fh.write(b"<w:r><w:t>Deep text.</w:t></w:r>" + b"</w:p>" * levels)
            fh.write(b"</w:body></w:document>")
    return buf.getvalue()


def slow_docx(mb: int = 30) -> bytes:
    """A DOCX of ``mb`` MB of short paragraphs: little memory, seconds of CPU (the XML
    parser's per-element work; ~0.25 s per MB on the 2-core development machine, but 10
    MB took under the test's 1 s of CPU on a faster one (AMD EPYC, 2026-12-07): 30 MB
    leaves room)."""
    rnd = random.Random(3)
    para = b"<w:p><w:r><w:t>Slow %s paragraph text.</w:t></w:r></w:p>"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as fh:
            fh.write(f'<w:document xmlns:w="{W}"><w:body>'.encode())
            for _ in range((mb << 20) // (len(para) * 1024)):
                fh.write(b"".join(para % bytes(rnd.choices(b"abcdefghij", k=2))
                                  for _ in range(1024)))
            fh.write(b"</w:body></w:document>")
    return buf.getvalue()


def good_pdf(text: str = GOOD_TEXT) -> bytes:
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    for line in text.split("\n"):
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def good_docx(text: str = WIND_TEXT) -> bytes:
    document = docx.Document()
    for line in text.split("\n"):
        document.add_paragraph(line)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"bomb.pdf": pdf_bomb(), "bomb.docx": docx_bomb()}


def with_env(cfg: Config, **env: str) -> Config:
    """``cfg`` with the ``RAG_*`` settings of ``env``, read as the server reads them."""
    keep = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f"RAG_{f.name.upper()}" not in env}
    return Config.from_env(env=env, **keep)




# --------------------------------------------------------------------- against a server


@pytest.mark.parametrize("name", ["bomb.pdf", "bomb.docx"])
def test_bomb_upload_is_refused_naming_the_memory_limit(small_index, served, bombs, name):
    cfg = with_env(small_index, RAG_PARSE_MEMORY_MB=str(LIMIT_MB))
    with served(cfg) as url, httpx.Client(base_url=url, timeout=None) as client:
        r = client.post("/api/articles", files={"file": (name, bombs[name],
                                                         "application/octet-stream")})
        assert r.status_code == 409, r.text[:300]
        assert r.json()["code"] == "not_added" and MEMORY_REASON in r.json()["error"]
        listed = client.get("/api/articles").json()
        assert {a["id"] for a in listed["articles"]} == {"nile.txt", "moon.txt"}
        # an ordinary document of the same kind is read under the same limit
        good = "tides" + Path(name).suffix
        data = good_pdf() if name.endswith(".pdf") else good_docx()
        r = client.post("/api/articles", files={"file": (good, data,
                                                         "application/octet-stream")})
        assert r.status_code == 200 and r.json()["ok"], r.text[:300]
    assert sorted(p.name for p in cfg.source.iterdir()) == ["moon.txt", "nile.txt", good]


def test_build_cli_skips_bombs_indexes_the_rest_and_caches_what_it_read(tmp_path, bombs):
    src, index = tmp_path / "articles", tmp_path / "index"
    src.mkdir()
    for name, data in bombs.items():
        (src / name).write_bytes(data)
    (src / "good.pdf").write_bytes(good_pdf())
    (src / "good.docx").write_bytes(good_docx())
    (src / "tides.txt").write_text("Tides\n\nThe tides rise and fall twice a day.",
                                   encoding="utf-8")
    r = run_build_cli(src, index, RAG_PARSE_MEMORY_MB=str(LIMIT_MB))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["added"] == ["good.docx", "good.pdf", "tides.txt"]
    assert {s["path"]: s["reason"] for s in report["skipped"]} == {
        "bomb.docx": MEMORY_REASON, "bomb.pdf": MEMORY_REASON}
    assert len(list((index / ".parsed").glob("*.json"))) == 4  # four documents
    again = run_build_cli(src, index, RAG_PARSE_MEMORY_MB=str(LIMIT_MB))
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] == report["skipped"]


# --------------------------------------------------------------------------- unit tests


@pytest.fixture
def sandbox():
    from rag.ingest import sandbox

    return sandbox


def refuse_workers(monkeypatch, sandbox) -> None:
    """From now on, starting a worker process fails the test."""
    def no(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(sandbox, "_start_worker", no)


def test_reader_gives_what_the_in_process_readers_give(sandbox, tmp_path):
    pdf, word = good_pdf(), good_docx()
    with sandbox.DocumentReader(sandbox.ParseLimits(LIMIT_MB, 60)) as reader:
        assert reader.read(pdf, ".pdf") == read_pdf(pdf)
        pid = reader.worker_pid
        assert reader.read(word, ".docx") == read_docx(word)
        assert reader.worker_pid == pid  # one worker for the documents of a build
        with pytest.raises(Unreadable, match="damaged PDF"):
            reader.read(b"%PDF-1.4 nonsense", ".pdf")
        with pytest.raises(Unreadable, match="too many pages"):
            reader.read(good_pdf("one\ntwo"), ".pdf", max_pages=0)
    assert reader.worker_pid is None


def test_limits_come_from_the_environment_and_are_checked():
    from rag.types import RagError

    cfg = Config.from_env(env={"RAG_PARSE_MEMORY_MB": "512", "RAG_PARSE_SECONDS": "5"})
    assert (cfg.parse_memory_mb, cfg.parse_seconds) == (512, 5.0)
    assert (Config().parse_memory_mb, Config().parse_seconds) == (1024, 60.0)
    for bad in ({"parse_memory_mb": 16}, {"parse_seconds": 0.5}):
        with pytest.raises(RagError, match="parse_"):
            Config().replace(**bad)


def test_memory_outcome_is_cached_and_retried_only_under_a_higher_limit(
        sandbox, tmp_path, bombs, monkeypatch):
    cache = tmp_path / ".parsed"
    with sandbox.DocumentReader(sandbox.ParseLimits(LIMIT_MB, 60), cache) as reader:
        with pytest.raises(Unreadable) as first:
            reader.read(bombs["bomb.pdf"], ".pdf")
    assert str(first.value) == MEMORY_REASON
    refuse_workers(monkeypatch, sandbox)
    for limit in (LIMIT_MB, 64):  # the same or a lower limit: the cached outcome
        with sandbox.DocumentReader(sandbox.ParseLimits(limit, 60), cache) as reader:
            with pytest.raises(Unreadable, match=f"more than {limit} MB"):
                reader.read(bombs["bomb.pdf"], ".pdf")
    with sandbox.DocumentReader(sandbox.ParseLimits(2 * LIMIT_MB, 60), cache) as reader:
        with pytest.raises(AssertionError, match="a worker was started"):
            reader.read(bombs["bomb.pdf"], ".pdf")


def test_cpu_time_limit_stops_a_slow_document_and_the_next_one_is_read(sandbox, tmp_path):
    slow = slow_docx()
    with sandbox.DocumentReader(sandbox.ParseLimits(1024, 1), tmp_path / "c") as reader:
        with pytest.raises(Unreadable) as caught:
            reader.read(slow, ".docx")
        assert str(caught.value) == ("the document takes more than 1 s to read "
                                     "(RAG_PARSE_SECONDS)")
        assert reader.read(good_pdf(), ".pdf").text.startswith("Tidal power")


def test_a_stuck_worker_is_killed_at_the_deadline_and_that_is_not_cached(sandbox, tmp_path):
    cache = tmp_path / "c"
    first, second = good_pdf(), good_pdf(GOOD_TEXT + " Also in Korea.")
    with sandbox.DocumentReader(sandbox.ParseLimits(1024, 1), cache) as reader:
        reader.read(first, ".pdf")
        stuck = reader.worker_pid
        os.kill(stuck, signal.SIGSTOP)  # uses no CPU: only the parent's deadline stops it
        with pytest.raises(Unreadable, match="takes more than 1 s to read"):
            reader.read(second, ".pdf")
        assert reader.read(second, ".pdf").text.endswith("Also in Korea.")  # not cached
        assert reader.worker_pid != stuck
    with pytest.raises(ProcessLookupError):
        os.kill(stuck, 0)  # killed and reaped


def test_cache_entries_are_whole_files_and_a_damaged_one_is_read_again(
        sandbox, tmp_path, monkeypatch):
    cache, pdf = tmp_path / "c", good_pdf()
    with sandbox.DocumentReader(sandbox.ParseLimits(LIMIT_MB, 60), cache) as reader:
        doc = reader.read(pdf, ".pdf")
    (entry,) = cache.iterdir()  # no temporary file left next to it
    assert entry.suffix == ".json" and json.loads(entry.read_text())["document"]
    entry.write_bytes(entry.read_bytes()[:50])  # as if cut off (it is written by rename)
    with sandbox.DocumentReader(sandbox.ParseLimits(LIMIT_MB, 60), cache) as reader:
        assert reader.read(pdf, ".pdf") == doc
    refuse_workers(monkeypatch, sandbox)
    with sandbox.DocumentReader(sandbox.ParseLimits(LIMIT_MB, 60), cache) as reader:
        assert reader.read(pdf, ".pdf") == doc  # rewritten whole, read from the cache


def test_unchanged_documents_are_not_read_again_and_removed_ones_leave_the_cache(
        cfg, fake_embedder, bombs, monkeypatch, sandbox):
    cfg = cfg.replace(parse_memory_mb=LIMIT_MB)
    (cfg.source / "good.pdf").write_bytes(good_pdf())
    (cfg.source / "other.docx").write_bytes(good_docx())
    (cfg.source / "bomb.pdf").write_bytes(bombs["bomb.pdf"])
    first = rag.build(config=cfg)
    assert first.added == ("good.pdf", "other.docx")
    cache = Path(cfg.index_dir) / ".parsed"
    assert len(list(cache.iterdir())) == 3
    with monkeypatch.context() as patch:
        refuse_workers(patch, sandbox)
        again = rag.build(config=cfg, rebuild=True)
    assert again.added == first.added and again.skipped == first.skipped
    (cfg.source / "other.docx").unlink()
    rag.build(config=cfg)
    assert len(list(cache.iterdir())) == 2
