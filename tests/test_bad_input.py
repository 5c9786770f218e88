"""Bad input never crashes and never corrupts: questions from anyone, articles from anywhere.

Questions: unusable ones raise :class:`rag.types.InvalidQuestion` (a ``ValueError``) with a
message that says what to do, and the CLI exits 2 with one line and no traceback; odd but
usable ones (emoji, right-to-left, other languages, SQL or HTML look-alikes, control
characters) get an ordinary Answer; a 100,000-character question is cut before it reaches
the model. Source folders: every broken file is skipped with a reason, the good articles
are still indexed and answer. All with the fake embedder (no model needed).
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag.answer.shards import ShardReader
from rag.embedding import model as embed
from rag.index import live
from rag.config import Config
from rag.index.segments import open_index
from rag.types import BuildError, IndexMissing, InvalidQuestion, QuestionTooLong

TESTS = Path(__file__).parent

SOLAR = ("Solar power in Spain\n\nSpain installed record solar capacity in 2023. "
         "The grid operator said panels now supply a fifth of demand.")
CHESS = ("Chess world championship\n\nThe match in Singapore ended after fourteen games. "
         "Gukesh won the final game against Ding Liren.")


# -- questions --------------------------------------------------------------------

@pytest.fixture(scope="module")
def qcfg(tmp_path_factory) -> Config:
    """A small fake-model index shared by the question tests (they only read it). Its
    selector is on: the tests that get an answer run the shipped selector (``model``)."""
    base = tmp_path_factory.mktemp("questions")
    (base / "src").mkdir()
    (base / "src" / "solar.txt").write_text(SOLAR, encoding="utf-8")
    (base / "src" / "chess.txt").write_text(CHESS, encoding="utf-8")
    cfg = Config(source=base / "src", index_dir=base / "index", model="fake",
                 chunk_tokens=40, chunk_overlap=5, abstain_threshold=0.0)
    rag.build(config=cfg)
    return cfg


@pytest.fixture
def seen_queries(monkeypatch):
    """Every text the query embedder receives, and every question retrieval receives."""
    seen = {"embed": [], "search": []}
    fake = type(embed.get_embedder(Config(model="fake")))  # the class: every instance is spied on
    real_embed, real_retrieve = fake.embed_queries, ShardReader.retrieve

    def spy_embed(self, texts):
        seen["embed"].extend(texts)
        return real_embed(self, texts)

    def spy_retrieve(self, version, question, *args, **kwargs):
        seen["search"].append(question)
        return real_retrieve(self, version, question, *args, **kwargs)

    monkeypatch.setattr(fake, "embed_queries", spy_embed)
    monkeypatch.setattr(ShardReader, "retrieve", spy_retrieve)
    return seen


def assert_wellformed(a: rag.Answer, cfg: Config) -> None:
    """The Answer contract: a quote at its offsets, citations numbered from 1."""
    idx = open_index(cfg.index_dir)
    texts = {aid: idx.article(i).text for i, aid in enumerate(idx.article_ids)}
    assert [c.n for c in a.citations] == list(range(1, len(a.citations) + 1))
    for c in a.citations:
        assert texts[c.article_id][c.start:c.end] == c.quote
        assert texts[c.article_id][c.passage_start:c.passage_end] == c.passage
    if not a.abstained:
        assert a.text == a.citations[0].quote and a.text
    assert 0.0 <= a.score <= 1.0


@pytest.mark.parametrize("bad, says", [
    ("", "empty"),
    (" \t\n\r\u00a0\u2003 ", "empty"),
    ("\x00\x00\x00", "empty"),
    ("?!... ;:-- ¿¡ «»", "no letters or digits"),
    ("🚀🔥🤔", "no letters or digits"),
    (None, "must be a string"),
    (42, "must be a string"),
    (b"what is solar?", "must be a string"),
    (["solar"], "must be a string"),
])
def test_unusable_question_is_a_value_error_saying_what_to_do(qcfg, bad, says):
    with pytest.raises(InvalidQuestion, match=says) as info:
        rag.ask(bad, config=qcfg)
    assert isinstance(info.value, ValueError)
    assert "question" in str(info.value)


@pytest.mark.parametrize("question", [
    "How much solar capacity did Spain install? 🌞⚡",                  # emoji
    "ما هي قدرة الطاقة الشمسية في Spain؟",                               # Arabic, RTL
    "\u202eWho won\u202c the final game in \u2067Singapore\u2069?",   # bidi controls
    "מי ניצח במשחק האחרון ב-Singapore?",                               # Hebrew, RTL
    "Wer hat das letzte Spiel in Singapur gewonnen?",                  # German
    "谁赢得了新加坡的最后一局比赛？",                                          # Chinese
    "'; DROP TABLE articles; -- solar",                                # SQL-looking
    "\" OR 1=1 UNION SELECT text FROM articles --",
    "<script>alert('x')</script><img src=x onerror=alert(1)> solar?",  # HTML-looking
    "Who\x00 won\x07 the\x1b[31m final\x7f game?\x85",                 # control chars, NUL
    "solar\ud800capacity",                                             # lone surrogate
    "%s %d {0} {question} $(rm -rf /) `id` ../../etc/passwd",          # format / shell
    "9",                                                               # a lone digit
])
@pytest.mark.model
def test_odd_but_usable_questions_get_an_answer(qcfg, question, seen_queries):
    a = rag.ask(question, config=qcfg)
    assert_wellformed(a, qcfg)
    assert seen_queries["embed"] and seen_queries["search"]
    # what reached the model and the keyword search has no control characters left
    for sent in seen_queries["embed"] + seen_queries["search"]:
        assert not any(ord(ch) < 32 or 0x7f <= ord(ch) <= 0x9f or 0xd800 <= ord(ch) <= 0xdfff
                       for ch in sent), repr(sent)
    assert "\x00" not in a.question


@pytest.mark.model
def test_sql_looking_question_leaves_the_index_intact(qcfg):
    before = rag.ask("Who won the final game in Singapore?", config=qcfg)
    rag.ask("x'); DELETE FROM articles; DROP TABLE articles; --", config=qcfg)
    live._indexes.clear()  # reload from disk
    assert rag.ask("Who won the final game in Singapore?", config=qcfg) == before
    assert open_index(qcfg.index_dir).article_ids == ["chess.txt", "solar.txt"]


@pytest.mark.model
def test_question_text_is_returned_raw_for_the_ui_to_escape(qcfg):
    q = "<b>Who</b> won the final game &amp; where?"
    assert rag.ask(q, config=qcfg).question == q


@pytest.mark.model
def test_a_question_over_the_one_limit_is_refused_before_the_model(qcfg, seen_queries):
    # the same limit and message as the API (413), the CLI (exit 2), MCP and the UI
    limit = qcfg.max_question_chars
    question = "Who won the final game in Singapore? " * 3000
    a = rag.ask(question[:limit], config=qcfg)  # at the limit: answered, nothing cut
    assert a.citations[0].article_id == "chess.txt" and "cut" not in a.message
    seen_queries["embed"].clear(), seen_queries["search"].clear()
    for n in (limit + 1, 100_000):
        says = rf"^the question is too long \({n:,} characters; at most {limit:,}\)$"
        with pytest.raises(QuestionTooLong, match=says):
            rag.ask(question[:n], config=qcfg)
        with pytest.raises(QuestionTooLong, match=says):
            rag.search(question[:n], k=3, config=qcfg)
    assert seen_queries["embed"] == [] and seen_queries["search"] == []


def test_long_question_of_control_characters_is_bounded_too(qcfg, seen_queries):
    # 100k characters that all become white space: refused, and nothing reaches the model
    with pytest.raises(InvalidQuestion):
        rag.ask("\x01" * 100_000, config=qcfg)
    assert seen_queries["embed"] == []


@pytest.mark.parametrize("k", [0, -5, 51, 10**12, 2.5, "3", True, float("nan")])
def test_k_out_of_range_is_invalid_question_naming_the_range(qcfg, k):
    with pytest.raises(InvalidQuestion, match=r"k must be a whole number from 1 to 50"):
        rag.ask("solar", k=k, config=qcfg)


@pytest.mark.model
def test_k_at_the_limits_works(qcfg):
    assert len(rag.ask("solar", k=1, config=qcfg).citations) == 1
    assert 1 <= len(rag.ask("solar", k=qcfg.max_k, config=qcfg).citations) <= qcfg.max_k


def test_bad_retrieval_mode_and_config_values_are_clear(qcfg):
    with pytest.raises(InvalidQuestion, match="retrieval must be"):
        rag.ask("solar", config=qcfg, retrieval="magic")
    with pytest.raises(rag.RagError, match="k must be between 1 and 50"):
        qcfg.replace(k=0)
    with pytest.raises(rag.RagError, match="abstain_threshold"):
        qcfg.replace(abstain_threshold=1.5)


def test_missing_index_says_how_to_build(tmp_path):
    cfg = Config(source=tmp_path, index_dir=tmp_path / "none", model="fake")
    with pytest.raises(IndexMissing, match="python -m rag.build"):
        rag.ask("solar?", config=cfg)


# -- the command line ---------------------------------------------------------------

def run_ask(*args, index_dir: Path):
    """``python -m rag.ask`` in a child with the fake model registered (via conftest)."""
    code = ("import sys; sys.path.insert(0, %r); import conftest, runpy; "
            "sys.argv = ['rag.ask', *sys.argv[1:]]; "
            "runpy.run_module('rag.ask', run_name='__main__')" % str(TESTS))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_MODEL": "fake",
           "RAG_INDEX": str(index_dir), "RAG_CHUNK_TOKENS": "40", "RAG_CHUNK_OVERLAP": "5",
           "RAG_ABSTAIN_THRESHOLD": "0"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.parametrize("args, says", [
    (("",), "empty"),
    (("\t \n",), "empty"),
    (("?!?",), "no letters or digits"),
    (("\x01\x02\x03",), "empty"),
    (("solar", "--k", "0"), "k must be"),
    (("solar", "--k", "51"), "k must be"),
])
def test_cli_unusable_input_exits_2_with_one_friendly_line(qcfg, args, says):
    r = run_ask(*args, index_dir=qcfg.index_dir)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and says in r.stderr


def test_cli_argparse_errors_exit_2_without_traceback(qcfg):
    for args in (("solar", "--k", "abc"), ("solar", "--retrieval", "magic"), ()):
        r = run_ask(*args, index_dir=qcfg.index_dir)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("python -m rag.ask: error:")


@pytest.mark.model
def test_cli_long_and_odd_questions(qcfg):
    # 92,500 characters: refused with rag.ask's message (the CLI used to cut and answer)
    r = run_ask("Who won the final game in Singapore? " * 2500, "--json",
                index_dir=qcfg.index_dir)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("rag.ask: the question is too long (92,500 characters; "
                                f"at most {qcfg.max_question_chars:,})")
    r = run_ask("Who won the final game in Singapore?", "--json", index_dir=qcfg.index_dir)
    assert r.returncode == 0 and '"chess.txt"' in r.stdout
    r = run_ask("<script>alert(1)</script> 谁赢了? ما هو", index_dir=qcfg.index_dir)
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_cli_missing_index_exits_1_saying_how_to_build(tmp_path):
    r = run_ask("solar?", index_dir=tmp_path / "none")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "python -m rag.build" in r.stderr


# -- the source folder ----------------------------------------------------------------

def write(cfg, name, data):
    p = cfg.source / name
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
    return p


def skipped(report) -> dict[str, str]:
    return {s.path: s.reason for s in report.skipped}


def indexed_text(cfg, article_id) -> str:
    idx = open_index(cfg.index_dir)
    return idx.article(idx.article_ids.index(article_id)).text


def test_missing_source_folder(cfg, tmp_path):
    with pytest.raises(BuildError, match="source folder not found: .*nowhere"):
        rag.build(source=tmp_path / "nowhere", config=cfg)
    assert not (cfg.index_dir / "CURRENT").exists()


def test_source_that_is_a_file(cfg, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text(SOLAR)
    with pytest.raises(BuildError, match="not a folder"):
        rag.build(source=f, config=cfg)


def test_empty_source_folder(cfg):
    with pytest.raises(BuildError, match="no readable article in"):
        rag.build(config=cfg)
    assert not (cfg.index_dir / "CURRENT").exists()


def test_only_unreadable_files_names_each_reason(cfg, monkeypatch):
    locked = write(cfg, "locked.txt", SOLAR)
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads mode-000 files: make the OS refusal happen anyway
        real_open = Path.open

        def refuse(self, *args, **kwargs):
            if self.name == "locked.txt":
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)
    (cfg.source / "dangling.txt").symlink_to(cfg.source / "gone.txt")
    os.mkfifo(cfg.source / "pipe.txt")  # would block a naive reader forever
    with pytest.raises(BuildError) as info:
        rag.build(config=cfg)
    msg = str(info.value)
    assert "no readable article" in msg
    assert "locked.txt: Permission denied" in msg
    assert "dangling.txt: No such file or directory" in msg
    assert "pipe.txt: not a regular file" in msg


def test_fifo_named_txt_is_skipped_not_waited_for(cfg):
    write(cfg, "solar.txt", SOLAR)
    os.mkfifo(cfg.source / "pipe.txt")
    r = rag.build(config=cfg)
    assert skipped(r) == {"pipe.txt": "not a regular file"} and r.added == ("solar.txt",)


def test_binary_file_named_txt_is_skipped(cfg):
    write(cfg, "solar.txt", SOLAR)
    write(cfg, "photo.txt", bytes(range(256)) * 64)
    write(cfg, "noise.md", os.urandom(4096).replace(b"\x00", b"\x01"))
    r = rag.build(config=cfg)
    assert skipped(r) == {"photo.txt": "binary file", "noise.md": "binary file"}
    assert r.added == ("solar.txt",)


def test_invalid_utf8_is_read_with_a_fallback_not_dropped(cfg):
    write(cfg, "mixed.txt", "Café in Zürich\n\nThe café served ".encode("utf-8")
          + b"cr\xe8me br\xfbl\xe9e to 300 guests.")
    r = rag.build(config=cfg)
    assert r.added == ("mixed.txt",) and not r.skipped
    text = indexed_text(cfg, "mixed.txt")
    assert "300 guests" in text and "\ufffd" not in text
    a = rag.ask("How many guests did the café serve?", config=cfg)
    assert a.citations[0].article_id == "mixed.txt"


@pytest.mark.parametrize("name, encoded", [
    ("latin1.txt", "Müller à Genève\n\nLe café coûte 3 €uros; façade, naïve.".replace("€", "E")
     .encode("latin-1")),
    ("utf16le.txt", codecs.BOM_UTF16_LE + "Ελληνικά και 日本語\n\nΤο κείμενο.".encode("utf-16-le")),
    ("utf16be.md", codecs.BOM_UTF16_BE + "# Título\n\nAño nuevo en España.".encode("utf-16-be")),
    ("utf8bom.txt", codecs.BOM_UTF8 + "Žluťoučký kůň\n\nPříliš úpěl.".encode("utf-8")),
])
def test_other_encodings_are_decoded_exactly(cfg, name, encoded):
    write(cfg, name, encoded)
    r = rag.build(config=cfg)
    assert r.added == (name,) and not r.skipped
    expected = encoded
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
                       (codecs.BOM_UTF8, "utf-8")):
        if encoded.startswith(bom):
            expected = encoded[len(bom):].decode(codec)
            break
    else:
        expected = encoded.decode("latin-1")
    assert indexed_text(cfg, name) == expected


def test_article_over_the_size_limit_is_skipped_and_reported(cfg):
    write(cfg, "solar.txt", SOLAR)
    write(cfg, "huge.txt", "A very long article. " * 200)  # 4,200 bytes
    r = rag.build(config=cfg.replace(max_file_bytes=1000))
    assert skipped(r) == {"huge.txt": "too large (4200 bytes > 1000 bytes limit)"}
    assert r.added == ("solar.txt",)


def test_real_file_over_50_mb_is_skipped_without_being_read(cfg):
    write(cfg, "solar.txt", SOLAR)
    big = cfg.source / "archive.txt"
    with open(big, "wb") as f:  # sparse: 51 MiB on paper, nothing written
        f.truncate(51 * 2**20)
    r = rag.build(config=cfg)  # the default limit, 50 MiB
    assert Config().max_file_bytes == 50 * 2**20
    assert skipped(r) == {"archive.txt": "too large (51.0 MB > 50.0 MB limit)"}
    assert r.added == ("solar.txt",)


def test_html_with_only_scripts_is_skipped_and_no_script_is_indexed(cfg):
    write(cfg, "solar.txt", SOLAR)
    write(cfg, "app.html", "<html><head><title>App</title><script>var secretToken = 1;"
          "document.write('hello')</script><style>body{}</style></head><body>"
          "<script src='x.js'></script><noscript></noscript></body></html>")
    r = rag.build(config=cfg)
    assert skipped(r) == {"app.html": "no extractable text in HTML"}
    idx = open_index(cfg.index_dir)
    assert idx.article_ids == ["solar.txt"]
    assert "secretToken" not in idx.article(0).text


def test_html_article_keeps_text_and_drops_scripts(cfg):
    write(cfg, "page.html", "<html><head><title>Volcano</title><script>stealCookies()"
          "</script></head><body><article><h1>Volcano erupts in Iceland</h1><p>Lava reached "
          "the town of Grindavik on Sunday, officials said after the eruption began.</p>"
          "<script>alert(document.cookie)</script><p>Residents had been evacuated weeks "
          "before the fissure opened north of the town.</p></article></body></html>")
    r = rag.build(config=cfg)
    assert r.added == ("page.html",)
    text = indexed_text(cfg, "page.html")
    assert "Grindavik" in text and "stealCookies" not in text and "alert" not in text


def test_malformed_json_lines_good_lines_indexed_bad_line_numbers_reported(cfg):
    lines = [
        '{"id": "a1", "title": "Solar", "text": "Spain installed record solar capacity."}',
        '{"id": "a2", "text": "broken',                       # 2: invalid JSON
        '',                                                   # 3: blank, ignored
        '{"id": "a3", "text": "Gukesh won the final game against Ding Liren."}',
        '["not", "an", "object"]',                            # 5: not an object
        '{"id": "a4", "title": "no text"}',                   # 6: no text
        '{"id": {"x": 1}, "text": "bad id"}',                 # 7: bad id
        'NaN garbage \x01',                                   # 8: invalid JSON
        '{"id": "a5", "text": "Lava reached Grindavik on Sunday."}',
    ]
    write(cfg, "feed.jsonl", "\n".join(lines) + "\n")
    r = rag.build(config=cfg)
    assert sorted(r.added) == ["a1", "a3", "a5"]
    bad = skipped(r)
    assert sorted(bad) == ["feed.jsonl:2", "feed.jsonl:5", "feed.jsonl:6", "feed.jsonl:7",
                           "feed.jsonl:8"]
    assert bad["feed.jsonl:2"].startswith("line 2: invalid JSON")
    assert bad["feed.jsonl:6"] == 'line 6: record has no usable "text"'
    assert "feed.jsonl:2" in r.summary()
    a = rag.ask("Who won the final game?", config=cfg)
    assert a.citations[0].article_id == "a3"


def test_json_file_that_is_not_json_is_skipped(cfg):
    write(cfg, "solar.txt", SOLAR)
    write(cfg, "broken.json", '[{"id": "x", "text": "fine"}, {"id": ')
    r = rag.build(config=cfg)
    assert list(skipped(r)) == ["broken.json"] and "invalid JSON" in skipped(r)["broken.json"]


def test_duplicate_articles_are_indexed_once(cfg):
    write(cfg, "a.txt", SOLAR)
    write(cfg, "b/solar copy.txt", SOLAR)
    write(cfg, "c.jsonl", json.dumps({"id": "a.txt", "text": "another text, same id"}) + "\n"
          + json.dumps({"id": "dup", "title": "Solar power in Spain", "text": SOLAR}) + "\n")
    r = rag.build(config=cfg)
    assert r.added == ("a.txt",)
    assert skipped(r) == {"b/solar copy.txt": "duplicate of a.txt",
                          "c.jsonl:1": "duplicate id of a.txt",
                          "c.jsonl:2": "duplicate of a.txt"}
    idx = open_index(cfg.index_dir)
    assert idx.article_ids == ["a.txt"]
    a = rag.ask("How much of demand do panels supply?", k=5, config=cfg)
    assert len({(c.article_id, c.start) for c in a.citations}) == len(a.citations)


def test_symlink_loops_terminate_and_index_each_article_once(cfg):
    write(cfg, "news/solar.txt", SOLAR)
    (cfg.source / "news" / "again").symlink_to(cfg.source)         # loop to the root
    (cfg.source / "news" / "self").symlink_to(cfg.source / "news")  # loop to itself
    (cfg.source / "a").symlink_to(cfg.source / "b")                 # a <-> b
    (cfg.source / "b").symlink_to(cfg.source / "a")
    r = rag.build(config=cfg)
    assert r.added == ("news/solar.txt",)
    assert open_index(cfg.index_dir).article_ids == ["news/solar.txt"]


def test_names_with_spaces_and_non_ascii(cfg):
    names = ["my article.txt", "Ünïcödé — 日本語/ファイル 1.md", "emoji 🚀 news.txt",
             "quote's \"and\" <tag>.txt"]
    texts = [SOLAR, CHESS, "Rocket launch\n\nThe rocket reached orbit at 9 am.",
             "Volcano\n\nLava reached Grindavik on Sunday."]
    for name, text in zip(names, texts):
        write(cfg, name, text)
    r = rag.build(config=cfg)
    assert sorted(r.added) == sorted(names) and not r.skipped
    a = rag.ask("When did the rocket reach orbit?", config=cfg)
    assert a.citations[0].article_id == "emoji 🚀 news.txt"
    assert a.citations[0].source == "emoji 🚀 news.txt"
    a = rag.ask("Who won the final game in Singapore?", config=cfg)
    assert a.citations[0].article_id == "Ünïcödé — 日本語/ファイル 1.md"
    # an unchanged second build finds them all again by the same ids
    again = rag.build(config=cfg)
    assert not again.wrote and sorted(again.unchanged) == sorted(names)


def test_undecodable_file_name_bytes_do_not_crash(cfg):
    write(cfg, "solar.txt", SOLAR)
    raw = os.fsencode(cfg.source) + b"/caf\xe9 \xff.txt"
    with open(raw, "wb") as f:
        f.write(CHESS.encode())
    r = rag.build(config=cfg)
    assert sorted(r.added) == ["caf\ufffd \ufffd.txt", "solar.txt"]
    assert rag.ask("Who won the final game?", config=cfg).citations[0].article_id \
        == "caf\ufffd \ufffd.txt"
