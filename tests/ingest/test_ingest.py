"""Tests of rag.ingest.loaders: formats, titles, ids, decoding, dedupe and the protections."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

from rag.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    content_hash,
    iter_source_files,
    load_articles,
    load_file,
    text_hash,
)
from rag.types import Article, BuildError, Skipped

ARTICLE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Harbour bridge reopens after repairs | The Coastal Times</title>
<meta name="author" content="Maria Jensen">
<meta property="article:published_time" content="2024-03-14T09:30:00Z">
<link rel="canonical" href="https://coastal.example/news/bridge-reopens">
<script>window.analytics = {track: function(){}};</script>
</head>
<body>
<header><nav><ul>
  <li><a href="/">Home</a></li><li><a href="/news">News</a></li>
  <li><a href="/sport">Sport</a></li><li><a href="/subscribe">Subscribe now</a></li>
</ul></nav></header>
<main><article>
<h1>Harbour bridge reopens after repairs</h1>
<p>The Harbour Bridge reopened to traffic on Thursday morning after eleven months of
repairs that cost the city 48 million euros, officials said.</p>
<p>Engineers replaced 212 steel cables and resurfaced the entire deck, which had developed
cracks during the unusually cold winter of 2022. The work was carried out by Nordbyg.</p>
<p>"We are proud to give the bridge back to the people of the city," said mayor Anders
Holm at the opening ceremony, which drew several hundred residents despite the rain.</p>
<p>Commuters had faced detours of up to forty minutes while the bridge was closed. Ferry
services that were added during the closure will stop at the end of the month.</p>
</article></main>
<footer><p>Copyright 2024 The Coastal Times. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/cookies">Cookie settings</a></footer>
</body>
</html>
"""


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def by_id(articles: list[Article]) -> dict[str, Article]:
    return {a.id: a for a in articles}


def reasons(skipped: list[Skipped]) -> dict[str, str]:
    return {s.path: s.reason for s in skipped}


# ----------------------------------------------------------------------- plain text, md


def test_txt_title_is_first_nonempty_line_and_text_is_whole_file(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "\n\n  Budget approved  \nThe council approved the budget.\n\n")
    arts, skipped = load_articles(tmp_path)
    assert skipped == []
    (a,) = arts
    assert a.id == "a.txt" and a.source == "a.txt"
    assert a.title == "Budget approved"
    # whole text, leading blank lines and inner spaces kept, only the end stripped
    assert a.text == "\n\n  Budget approved  \nThe council approved the budget."
    assert a.content_hash == content_hash(title=a.title, text=a.text, source="a.txt")


def test_markdown_heading_marks_are_removed_from_title_only(tmp_path: Path) -> None:
    write(tmp_path / "h.md", "\n## Rates rise again ##\n\nThe central bank raised rates.\n")
    write(tmp_path / "plain.md", "#hashtag is not a heading\nbody text\n")
    arts = by_id(load_articles(tmp_path)[0])
    assert arts["h.md"].title == "Rates rise again"
    assert arts["h.md"].text.startswith("\n## Rates rise again ##\n")  # title stays quotable
    assert arts["plain.md"].title == "#hashtag is not a heading"


def test_markdown_front_matter_title(tmp_path: Path) -> None:
    write(tmp_path / "f.md", "---\ntitle: \"Front title\"\ndate: 2024-01-01\n---\n# Other\nx\n")
    (a,) = load_articles(tmp_path)[0]
    assert a.title == "Front title"
    assert a.text.startswith("---\ntitle:")


def test_long_first_line_title_is_clipped(tmp_path: Path) -> None:
    write(tmp_path / "long.txt", "word " * 200 + "\nsecond line")
    (a,) = load_articles(tmp_path)[0]
    assert len(a.title) <= 201 and a.title.endswith("…")
    assert a.text.startswith("word word")


# ----------------------------------------------------------------------- folders and ids


def test_nested_folders_non_ascii_and_spaces_give_posix_relative_ids(tmp_path: Path) -> None:
    write(tmp_path / "news" / "a b é.txt", "Café opens\nA new café opened.")
    write(tmp_path / "news" / "deep" / "z.md", "# Deep\nDeep text.")
    write(tmp_path / "top.TXT", "Top\nUpper-case suffix.")
    write(tmp_path / "notes.odt", "ignored silently")
    write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    write(tmp_path / ".hidden.txt", "Hidden\nnot read")
    write(tmp_path / ".git" / "x.txt", "Hidden dir\nnot read")
    arts, skipped = load_articles(tmp_path)
    assert [a.id for a in arts] == ["news/a b é.txt", "news/deep/z.md", "top.TXT"]
    assert skipped == []  # unsupported suffixes and hidden files are not reported
    assert by_id(arts)["news/a b é.txt"].source == "news/a b é.txt"
    assert by_id(arts)["news/a b é.txt"].title == "Café opens"
    files = iter_source_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [a.id for a in arts]
    assert ".txt" in SUPPORTED_SUFFIXES and ".jsonl" in SUPPORTED_SUFFIXES


def test_order_is_deterministic(tmp_path: Path) -> None:
    for name in ["c.txt", "a.txt", "b/x.txt", "b/a.txt", "B.txt"]:
        write(tmp_path / name, f"{name}\ntext of {name}")
    first = [a.id for a in load_articles(tmp_path)[0]]
    assert first == sorted(first)
    assert first == [a.id for a in load_articles(tmp_path)[0]]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "a.txt", "Loop\nText inside the loop folder.")
    os.symlink(tmp_path, tmp_path / "sub" / "back")  # sub/back -> root: a loop
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "self")  # sub/self -> sub
    result: list = []
    worker = threading.Thread(target=lambda: result.append(load_articles(tmp_path)))
    worker.daemon = True
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "load_articles hung on a symlink loop"
    arts, skipped = result[0]
    assert [a.id for a in arts] == ["sub/a.txt"]  # read once, not once per loop turn
    assert skipped == []


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlinked_folder_is_followed_once(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "o.txt", "Outside\nLinked article.")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "linked")
    assert [a.id for a in load_articles(root)[0]] == ["linked/o.txt"]


def test_missing_folder_raises_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="source folder not found"):
        load_articles(tmp_path / "nope")
    with pytest.raises(BuildError, match="not a folder"):
        load_articles(write(tmp_path / "file.txt", "x"))


# ----------------------------------------------------------------------- decoding


def test_invalid_utf8_falls_back_to_cp1252(tmp_path: Path) -> None:
    write(tmp_path / "c.txt", b"caf\xe9 \x93quoted\x94\nMore text.")
    (a,) = load_articles(tmp_path)[0]
    assert a.title == "café \u201cquoted\u201d"
    assert a.text.startswith("café")


def test_utf8_bom_is_removed(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "\ufeffTitle\nBody".encode("utf-8"))
    (a,) = load_articles(tmp_path)[0]
    assert a.title == "Title" and a.text == "Title\nBody"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(tmp_path: Path, codec: str) -> None:
    bom = "\ufeff".encode(codec)
    write(tmp_path / "u.txt", bom + "Zürich news\r\nThe lake froze.\r\n".encode(codec))
    arts, skipped = load_articles(tmp_path)
    assert skipped == []
    assert arts[0].title == "Zürich news"
    assert arts[0].text == "Zürich news\nThe lake froze."


def test_binary_txt_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "nul.txt", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" * 50)
    write(tmp_path / "ctl.txt", bytes(range(1, 32)) * 20 + b"some letters")  # no NUL
    arts, skipped = load_articles(tmp_path)
    assert arts == []
    assert reasons(skipped) == {"nul.txt": "binary file", "ctl.txt": "binary file"}


def test_empty_and_whitespace_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "empty.txt", b"")
    write(tmp_path / "blank.md", " \n\r\n\t \n")
    arts, skipped = load_articles(tmp_path)
    assert arts == []
    assert reasons(skipped) == {"blank.md": "empty", "empty.txt": "empty"}


def test_crlf_and_cr_are_normalised_and_nul_removed(tmp_path: Path) -> None:
    write(tmp_path / "w.txt", b"Title\r\nline one\r\nline two\rline three\r\n")
    write(tmp_path / "n.jsonl", json.dumps({"id": "n", "text": "a\u0000b\r\nc"}) + "\n")
    arts = by_id(load_articles(tmp_path)[0])
    assert arts["w.txt"].text == "Title\nline one\nline two\nline three"
    assert "\r" not in arts["w.txt"].text
    assert arts["n"].text == "ab\nc"


def test_too_large_file_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "big.txt", "Big\n" + "x" * 500)
    write(tmp_path / "small.txt", "Small\nok")
    arts, skipped = load_articles(tmp_path, max_file_bytes=100)
    assert [a.id for a in arts] == ["small.txt"]
    (s,) = skipped
    assert s.path == "big.txt" and s.reason.startswith("too large (504 bytes > 100 bytes")


# ----------------------------------------------------------------------- json / jsonl


def test_jsonl_records_metadata_and_malformed_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": 7, "title": "Seven", "text": "Text seven.", "url": "https://x/7",
                    "published": "2024-05-01", "author": "Ann"}),
        "",
        json.dumps({"text": "No id here.", "source": "Wire"}),
        '{"id": "broken", "text": "oops"',
        json.dumps({"id": "notext", "title": "Nothing"}),
        json.dumps({"id": "blank", "text": "   "}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "last", "text": "Last one."}),
    ]
    write(tmp_path / "d" / "feed.jsonl", "\n".join(lines) + "\n")
    arts, skipped = load_articles(tmp_path)
    got = by_id(arts)
    assert list(got) == ["7", "d/feed.jsonl#3", "last"]
    seven = got["7"]
    assert (seven.title, seven.text, seven.url, seven.published, seven.author) == (
        "Seven", "Text seven.", "https://x/7", "2024-05-01", "Ann")
    assert seven.source == "https://x/7"  # url when no source
    assert got["d/feed.jsonl#3"].source == "Wire"
    assert got["d/feed.jsonl#3"].title == "No id here."  # first line of text
    assert got["last"].source == "d/feed.jsonl"  # relative path when neither
    bad = reasons(skipped)
    assert set(bad) == {"d/feed.jsonl:4", "d/feed.jsonl:5", "d/feed.jsonl:6", "d/feed.jsonl:7"}
    assert bad["d/feed.jsonl:4"].startswith("line 4: invalid JSON (")
    assert bad["d/feed.jsonl:5"].startswith("line 5: ") and "text" in bad["d/feed.jsonl:5"]


@pytest.mark.parametrize("shape", ["list", "articles", "single"])
def test_json_shapes(tmp_path: Path, shape: str) -> None:
    records = [{"id": "r1", "title": "One", "text": "First."}, {"text": "Second."}]
    data: object = {"list": records, "articles": {"articles": records},
                    "single": records[0]}[shape]
    write(tmp_path / "recs.json", json.dumps(data))
    arts, skipped = load_articles(tmp_path)
    assert skipped == []
    got = by_id(arts)
    assert got["r1"].title == "One" and got["r1"].text == "First."
    if shape == "single":
        assert list(got) == ["r1"]
    else:
        assert list(got) == ["r1", "recs.json#2"]


def test_json_edge_cases(tmp_path: Path) -> None:
    write(tmp_path / "bad.json", '{"text": ')
    write(tmp_path / "none.json", "[]")
    write(tmp_path / "num.json", "42")
    write(tmp_path / "noid.json", json.dumps({"text": "Single with no id."}))
    write(tmp_path / "lines.json", '{"id": "l1", "text": "A"}\n{"id": "l2", "text": "B"}\n')
    write(tmp_path / "mixed.json", json.dumps([{"id": "ok", "text": "Fine."}, {"id": "x"}]))
    arts, skipped = load_articles(tmp_path)
    assert sorted(a.id for a in arts) == ["l1", "l2", "noid.json", "ok"]
    bad = reasons(skipped)
    assert bad["bad.json"].startswith("invalid JSON (")
    assert bad["none.json"] == "no records"
    assert "list of records" in bad["num.json"]
    assert bad["mixed.json#2"].startswith("record 2: ")


def test_metadata_change_changes_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write(path, json.dumps({"id": "a", "title": "Old", "text": "Same text."}))
    (before,) = load_articles(tmp_path)[0]
    write(path, json.dumps({"id": "a", "title": "New", "text": "Same text."}))
    (after,) = load_articles(tmp_path)[0]
    assert before.content_hash != after.content_hash
    assert text_hash(before.text) == text_hash(after.text)
    assert len(before.content_hash) == 64


# ----------------------------------------------------------------------- duplicates


def test_duplicate_texts_are_indexed_once(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "Same\nIdentical article text.")
    write(tmp_path / "b" / "copy.txt", "Same\nIdentical article text.")
    write(tmp_path / "c.jsonl", json.dumps({"id": "rec", "text": "Same\nIdentical article text."}))
    arts, skipped = load_articles(tmp_path)
    assert [a.id for a in arts] == ["a.txt"]
    assert reasons(skipped) == {"b/copy.txt": "duplicate of a.txt",
                                "c.jsonl:1": "duplicate of a.txt"}


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", json.dumps({"id": "x", "text": "First text."}))
    write(tmp_path / "b.jsonl", "\n" + json.dumps({"id": "x", "text": "Second text."}))
    arts, skipped = load_articles(tmp_path)
    assert [(a.id, a.text) for a in arts] == [("x", "First text.")]
    assert reasons(skipped) == {"b.jsonl:2": "duplicate id of a.jsonl:1"}


# ----------------------------------------------------------------------- html


def test_html_article_extraction(tmp_path: Path) -> None:
    write(tmp_path / "news" / "bridge.html", ARTICLE_HTML)
    arts, skipped = load_articles(tmp_path)
    assert skipped == []
    (a,) = arts
    assert a.id == "news/bridge.html" and a.source == "news/bridge.html"
    assert a.title == "Harbour bridge reopens after repairs"
    assert "cost the city 48 million euros" in a.text
    assert "Ferry\nservices" in a.text or "Ferry services" in a.text
    for boilerplate in ("Subscribe now", "Privacy policy", "Cookie settings", "analytics"):
        assert boilerplate not in a.text
    assert a.author == "Maria Jensen"
    assert a.published and a.published.startswith("2024-03-14")
    assert a.url == "https://coastal.example/news/bridge-reopens"


def test_html_title_falls_back_to_title_tag(tmp_path: Path) -> None:
    body = "".join(f"<p>Paragraph {i} of a plain page about the river flood, with enough "
                   "words to be worth extracting as the main content.</p>" for i in range(5))
    write(tmp_path / "p.htm", f"<html><head><title>River &amp; flood</title></head>"
                              f"<body><div>{body}</div></body></html>")
    (a,) = load_articles(tmp_path)[0]
    assert "Paragraph 3 of a plain page" in a.text
    assert a.title == "River & flood"


def test_html_with_only_script_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "s.html", "<html><head><title>App</title><script>var a = 'some words "
                               "that are code, not an article';</script></head><body>"
                               "<script>document.write(a)</script></body></html>")
    arts, skipped = load_articles(tmp_path)
    assert arts == []
    assert reasons(skipped) == {"s.html": "no extractable text in HTML"}


# ----------------------------------------------------------------------- misc


def test_load_file_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "one.md", "# One\nBody")
    arts, skipped = load_file(path, "one.md")
    assert [a.title for a in arts] == ["One"] and skipped == []
    assert load_file(write(tmp_path / "x.csv", "a,b"), "x.csv") == ([], [])
    load_articles(tmp_path, progress=True)
    assert "loading" in capsys.readouterr().err


def test_single_nul_byte_without_bom_means_binary(tmp_path: Path) -> None:
    write(tmp_path / "one_nul.txt", b"Looks like text\nbut has a NUL\x00 byte in it, " * 20)
    arts, skipped = load_articles(tmp_path)
    assert arts == [] and reasons(skipped) == {"one_nul.txt": "binary file"}


def test_os_error_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = write(tmp_path / "locked.txt", "Locked\ntext")
    write(tmp_path / "open.txt", "Open\ntext")
    real_open = Path.open

    def guarded_open(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.name == locked.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    arts, skipped = load_articles(tmp_path)
    assert [a.id for a in arts] == ["open.txt"]
    assert reasons(skipped) == {"locked.txt": "Permission denied"}
