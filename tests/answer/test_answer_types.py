"""Wrong quotes with high confidence (issue 24, item 2): a game's score, a count and a
word's meaning are kinds of answer a sentence must hold, and a fragment that asks
("Veritas?") or has under three words is never the answer while a sentence is on offer.

Unit tests on sentences written here; the three reader questions of the issue on the real
BBC stories (``../shared/corpus/news``, not redistributable, so read from there: skipped
without it) with the bundled model."""

from __future__ import annotations

import json
import shutil

import pytest

import rag
from rag.answer.question import answer_type, has_type, is_fragment
from rag.config import Config
from tests.conftest import SHARED

CORPUS = SHARED / "corpus" / "news" / "articles.jsonl"


@pytest.mark.parametrize("question,kind", [
    ("What was the score when Melzer beat Agassi?", "score"),
    ("What was the final score of the match?", "score"),
    ("By what margin did Wales win?", "score"),
    ("What does the name Veritas mean?", "meaning"),
    ("What does UKIP stand for?", "meaning"),
    ("What is the meaning of the word glasnost?", "meaning"),
    ("How many people died in the Hatfield crash?", "count"),
    ("How much did it cost to train R1?", "money"),
    ("What did the minister mean to say about taxes?", "meaning"),
    ("Who scored the winning goal?", "name"),
])
def test_answer_type(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize("kind,sentence,has", [
    ("score", "The visitor lost 6-3 6-1 in under an hour.", True),
    ("score", "Wales won 24–18 at the Millennium Stadium.", True),
    ("score", "The seed has now beaten him in two of their three meetings.", False),
    ("score", "Profits rose 2004-2005 by a fifth.", False),  # years, not a score
    ("meaning", 'The party is called Veritas - Latin for "truth".', True),
    ("meaning", "The name means 'new way' in Swahili.", True),
    ("meaning", "The name will doom it.", False),
])
def test_has_type(kind, sentence, has):
    assert has_type(kind, sentence, "what was the score / what does the name mean?") is has


@pytest.mark.parametrize("text,fragment", [
    ("Veritas?", True), ('"Why now?"', True), ("Well done.", True), ("Great stuff!", True),
    ("The name will doom it.", False), ("Four people died.", False),
])
def test_is_fragment(text, fragment):
    assert is_fragment(text, 0, len(text)) is fragment


@pytest.fixture(scope="module")
def bbc_index(tmp_path_factory) -> Config:
    """The three stories of the issue among 30 others of the BBC corpus."""
    if not CORPUS.is_file():
        pytest.skip(f"the BBC corpus is not at {CORPUS}")
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    keep = {"bbc-politics-111", "bbc-politics-178", "bbc-politics-293", "bbc-sport-427"}
    chosen = [r for r in rows if r["id"] in keep] + rows[300:330]
    base = tmp_path_factory.mktemp("bbc")
    (base / "src").mkdir()
    (base / "src" / "news.jsonl").write_text(
        "\n".join(json.dumps({k: r[k] for k in ("id", "title", "text", "source")})
                  for r in chosen), encoding="utf-8")
    cfg = Config(source=base / "src", index_dir=base / "index")
    rag.build(config=cfg)
    yield cfg
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.model
def test_a_count_question_quotes_the_count_of_what_it_asks(bbc_index):
    a = rag.ask("How many people died in the Hatfield crash?", config=bbc_index)
    assert a.citations[0].quote.startswith("Four people died")


@pytest.mark.model
def test_a_fragment_is_never_the_answer(bbc_index):
    a = rag.ask("What does the name Veritas mean?", config=bbc_index)
    assert all(not c.quote.strip().endswith("?") for c in a.citations)
    assert a.abstained or "Latin for" in a.text  # was "Veritas?" at 0.80


@pytest.mark.model
def test_a_score_question_quotes_a_score(bbc_index):
    a = rag.ask("What was the score when Melzer beat Agassi?", config=bbc_index)
    assert has_type("score", a.citations[0].quote, a.question.lower())  # was a sentence
    # without one ("Melzer has now beaten Agassi in two of their three meetings.", 0.82)


@pytest.mark.model
def test_a_score_question_quotes_that_match(bbc_index):
    # was xfail (another match's score was quoted); the selector trained for readers'
    # questions (issue 23) quotes the right one
    a = rag.ask("What was the score when Melzer beat Agassi?", config=bbc_index)
    assert "6-3 6-1" in a.text
