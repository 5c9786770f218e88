"""Issue 22, item 4: an upload must not take over another article's id.

The attack: ``POST /api/articles`` with a ``.json`` file whose record carries the id of an
article already indexed (``nile.txt``), under a name that sorts before the real file
(``a.json``). Before the fix the real article became "duplicate id of a.json" and the
article route and the answers served the attacker's text under the real id.

The rule is tested on its own too: when several files declare one id, the one the live
index read it from keeps it, whatever the file names (rag.ingest.loaders.load_sources).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

import rag
from rag.index.segments import read_layout
from rag.ingest.loaders import Indexed, load_articles, load_sources

FAKE_NILE = ("The Nile\n\nThe Nile is a small creek in Iceland. It flows south into a "
             "car park. Its length is about 3 metres.\n")


def _upload(base: str, name: str, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=120) as client:
        return client.post("/api/articles", files={"file": (name, body, "application/json")})


def test_an_upload_cannot_take_over_an_indexed_article_id(served, small_index):
    cfg = small_index
    before = sorted(p.name for p in Path(cfg.source).iterdir())
    attack = json.dumps({"id": "nile.txt", "title": "The Nile", "text": FAKE_NILE}).encode()
    with served(cfg) as base:
        r = _upload(base, "a.json", attack)
        assert r.status_code == 409, r.text
        assert "nile.txt" in r.json()["error"] and "already" in r.json()["error"]
        with httpx.Client(base_url=base, timeout=120) as client:
            art = client.get("/api/articles/nile.txt")
            assert art.status_code == 200
            assert "major river in Africa" in art.json()["text"]
            ask = client.post("/api/ask", json={"question": "How long is the Nile?"})
            assert ask.status_code == 200
            quotes = " ".join(c["quote"] for c in ask.json()["citations"])
            assert "Iceland" not in quotes and "car park" not in quotes
    # nothing was saved: the folder holds what it held
    assert sorted(p.name for p in Path(cfg.source).iterdir()) == before


def test_an_upload_with_new_ids_is_still_added(served, small_index):
    body = json.dumps({"id": "danube", "text": "The Danube\n\nThe Danube flows east into "
                       "the Black Sea."}).encode()
    with served(small_index) as base:
        r = _upload(base, "a.json", body)
        assert r.status_code == 200, r.text
        with httpx.Client(base_url=base, timeout=120) as client:
            assert client.get("/api/articles/danube").status_code == 200


def test_the_library_refuses_taken_ids_with_a_message_and_saves_nothing(small_index, tmp_path):
    """What the UI shows (it renders ``ChangeResult.message``)."""
    from rag.app.library import Library

    lib = Library(small_index)
    before = sorted(p.name for p in Path(small_index.source).iterdir())
    bad = tmp_path / "u1"
    bad.write_text(json.dumps([{"id": "x", "text": "One."}, {"id": "moon.txt",
                                                             "text": FAKE_NILE}]))
    result = lib.add([(str(bad), "records.json")])
    assert not result.ok and result.message.startswith("Nothing was added.")
    assert "already has an article with the id 'moon.txt'" in result.message
    # two files of one upload declaring one id: the second is refused, nothing is saved
    one, two = tmp_path / "u2", tmp_path / "u3"
    one.write_text(json.dumps({"id": "same", "text": "First."}))
    two.write_text(json.dumps({"id": "same", "text": "Second."}))
    result = lib.add([(str(one), "one.json"), (str(two), "two.json")])
    assert not result.ok and "two.json" in result.message and "'same'" in result.message
    assert sorted(p.name for p in Path(small_index.source).iterdir()) == before
    assert "craters" in lib.article("moon.txt").text


# -- the rule: which file keeps a contested id --------------------------------------------

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_indexed_file_keeps_its_id_whatever_the_names(tmp_path):
    _write(tmp_path / "nile.txt", "The Nile\n\nA river.")
    _write(tmp_path / "a.json", json.dumps({"id": "nile.txt", "text": FAKE_NILE}))
    # no index yet: file order decides (nothing indexed can be taken over)
    first = load_sources(tmp_path)
    assert [a.text for a in first.articles] == [FAKE_NILE.rstrip()]
    # the index read nile.txt from nile.txt: that file keeps it, edited or not
    indexed = Indexed(files={"nile.txt": "nile.txt"})
    for text in ("The Nile\n\nA river.", "The Nile\n\nA long river, edited."):
        _write(tmp_path / "nile.txt", text)
        got = load_sources(tmp_path, indexed=indexed)
        assert [(a.id, a.text) for a in got.articles] == [("nile.txt", text)]
        assert {s.path: s.reason for s in got.skipped} == {
            "a.json": "duplicate id of nile.txt (the file the index read it from)"}
        assert got.files == {"nile.txt": "nile.txt"}


def test_an_index_without_file_origins_keeps_the_same_content(tmp_path):
    """Indexes written before origins were recorded: the content hash identifies the
    indexed claimant."""
    _write(tmp_path / "nile.txt", "The Nile\n\nA river.")
    _write(tmp_path / "a.json", json.dumps({"id": "nile.txt", "text": FAKE_NILE}))
    assert [a.text for a in load_articles(tmp_path)[0]] == [FAKE_NILE.rstrip()]
    hashes = {"nile.txt": _hash_of(tmp_path, "nile.txt")}
    got = load_sources(tmp_path, indexed=Indexed(hashes=hashes))
    assert [a.text for a in got.articles] == ["The Nile\n\nA river."]


def _hash_of(folder: Path, rel: str) -> str:
    from rag.ingest.loaders import load_file

    (art,), _ = load_file(folder / rel, rel)
    return art.content_hash


def test_an_indexed_text_keeps_its_id_against_a_copy_named_first(tmp_path):
    _write(tmp_path / "nile.txt", "The Nile\n\nA river.")
    _write(tmp_path / "a.txt", "The Nile\n\nA river.")
    assert [a.id for a in load_sources(tmp_path).articles] == ["a.txt"]
    got = load_sources(tmp_path, indexed=Indexed(files={"nile.txt": "nile.txt"}))
    assert [a.id for a in got.articles] == ["nile.txt"]
    assert {s.path: s.reason for s in got.skipped} == {"a.txt": "duplicate of nile.txt"}


def test_builds_record_the_file_of_every_id_and_keep_it(cfg, fake_embedder):
    _write(Path(cfg.source) / "nile.txt", "The Nile\n\nThe Nile is a river in Africa.")
    rag.build(config=cfg)
    assert read_layout(cfg.index_dir).origins() == {"nile.txt": "nile.txt"}
    _write(Path(cfg.source) / "a.json", json.dumps({"id": "nile.txt", "text": FAKE_NILE}))
    for rebuild in (False, True):
        report = rag.build(config=cfg, rebuild=rebuild)
        assert {s.path: s.reason for s in report.skipped} == {
            "a.json": "duplicate id of nile.txt (the file the index read it from)"}
        art = rag.get_article("nile.txt", config=cfg)
        assert "river in Africa" in art.text
