"""ask() with the fake embedder: the Answer contract, validation, reload, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

import rag
from rag.types import Answer, IndexMissing, InvalidQuestion
from tests.conftest import TESTS

ARTICLES = {
    "energy/solar.txt": "Solar power in Spain\n\nSpain installed record solar capacity in 2023. "
                        "The grid operator said panels now supply a fifth of demand.",
    "chess.md": "# Chess world championship\n\nThe match in Singapore ended after fourteen "
                "games. Gukesh won the final game against Ding Liren.\n\nGukesh won the final "
                "game against Ding Liren.",
}


@pytest.fixture
def built(cfg, fake_embedder):
    for name, text in ARTICLES.items():
        p = cfg.source / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    rag.build(config=cfg)
    return cfg


def article_text(cfg, article_id):
    text = (cfg.source / article_id).read_text(encoding="utf-8")
    return text


def test_answer_is_a_quote_at_its_offsets(built):
    a = rag.ask("Who won the final game in Singapore?", config=built)
    assert not a.abstained and a.text
    first = a.citations[0]
    assert [c.n for c in a.citations] == list(range(1, len(a.citations) + 1))
    assert a.text == first.quote and (a.article_id, a.start, a.end) == (
        first.article_id, first.start, first.end)
    for c in a.citations:
        text = article_text(built, c.article_id)
        assert text[c.start:c.end] == c.quote
        assert text[c.passage_start:c.passage_end] == c.passage
        assert c.passage_start <= c.start < c.end <= c.passage_end
        assert 0.0 <= c.score <= 1.0
    assert 0.0 <= a.score <= 1.0
    assert first.score == a.score  # the first citation's confidence is the answer's


def test_repeated_sentence_citations_point_at_distinct_offsets(built):
    a = rag.ask("Gukesh won the final game against Ding Liren", k=5, config=built)
    chess = [c for c in a.citations if c.article_id == "chess.md"]
    text = article_text(built, "chess.md")
    for c in chess:
        assert text[c.start:c.end] == c.quote
    assert len({c.start for c in chess}) == len(chess)


def test_k_limits_the_citations_and_json_round_trips(built):
    a = rag.ask("solar capacity Spain", k=1, config=built)
    assert len(a.citations) == 1
    again = Answer.from_dict(json.loads(a.to_json()))
    assert again == a


@pytest.mark.parametrize("bad", [None, 42, b"bytes", "", "   \n\t ", "?!...", "\x00\x01"])
def test_unusable_questions_raise_a_clear_error(built, bad):
    with pytest.raises(InvalidQuestion, match="question"):
        rag.ask(bad, config=built)


@pytest.mark.parametrize("k", [0, -1, 51, 2.5, "3", True])
def test_k_out_of_range(built, k):
    with pytest.raises(InvalidQuestion, match="k must be"):
        rag.ask("solar", k=k, config=built)


def test_missing_index_says_to_build(cfg):
    with pytest.raises(IndexMissing, match="rag.build"):
        rag.ask("anything", config=cfg)


def test_threshold_one_always_abstains_with_nearest_passages(built):
    a = rag.ask("Who won the final game?", config=built.replace(abstain_threshold=1.0))
    assert a.abstained and a.text == "" and a.article_id is None
    assert a.citations and not any(c.answers for c in a.citations)
    assert "do not answer" in a.message


def test_rebuilt_index_is_picked_up_without_restart(built):
    rag.ask("solar", config=built)
    (built.source / "volcano.txt").write_text(
        "Volcano in Iceland\n\nLava reached Grindavik on Sunday morning.", encoding="utf-8")
    rag.build(config=built)
    a = rag.ask("When did lava reach Grindavik?", config=built)
    assert a.citations[0].article_id == "volcano.txt"


def test_threads_get_the_same_answers(built):
    questions = ["Who won the final game?", "How much of demand do panels supply?",
                 "Where was the match?", "solar capacity 2023"] * 4
    expected = [rag.ask(q, config=built) for q in questions]
    got: list = [None] * len(questions)

    def work(i):
        got[i] = rag.ask(questions[i], config=built)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def cli(*args, cfg, stdout=subprocess.PIPE, module="rag.ask"):
    # the child asks with the default selector (the shipped model): such tests are `model`
    code = ("import sys; sys.path.insert(0, %r); import conftest, runpy; "
            "sys.argv = [%r, *sys.argv[1:]]; runpy.run_module(%r, run_name='__main__')"
            % (str(TESTS), module, module))
    env = {**os.environ, "RAG_MODEL": "fake", "RAG_INDEX": str(cfg.index_dir),
           "RAG_CHUNK_TOKENS": str(cfg.chunk_tokens),
           "RAG_CHUNK_OVERLAP": str(cfg.chunk_overlap), "RAG_ABSTAIN_THRESHOLD": "0"}
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=300)


@pytest.mark.model
def test_cli_prints_answer_and_json(built):
    r = cli("Who won the final game in Singapore?", cfg=built)
    assert r.returncode == 0, r.stderr
    assert "[1]" in r.stdout and "chess.md" in r.stdout
    r = cli("Who won the final game in Singapore?", "--json", "--k", "2", cfg=built)
    assert r.returncode == 0, r.stderr
    a = Answer.from_dict(json.loads(r.stdout))
    assert len(a.citations) <= 2 and a.text == a.citations[0].quote


@pytest.mark.model
def test_python_m_rag_runs_the_same_commands(built):
    one = cli("Who won the final game in Singapore?", "--json", cfg=built)
    both = cli("ask", "Who won the final game in Singapore?", "--json", cfg=built,
               module="rag")
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["text"] == json.loads(one.stdout)["text"]
    r = cli("frobnicate", cfg=built, module="rag")
    assert r.returncode == 2 and "build,ask,serve,eval" in r.stderr


def test_cli_bad_question_exits_2_without_traceback(built):
    r = cli("   ", cfg=built)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "question" in r.stderr
    r = cli("solar", "--k", "0", cfg=built)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.model
def test_cli_output_into_a_closed_pipe_is_not_an_error(built):
    """`rag-ask "..." | head -1`: the reader leaves early; no traceback, exit 0."""
    r_fd, w_fd = os.pipe()
    os.close(r_fd)  # nobody will read
    with os.fdopen(w_fd, "w") as closed:
        r = cli("Who won the final game?", "--k", "5", cfg=built, stdout=closed)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
