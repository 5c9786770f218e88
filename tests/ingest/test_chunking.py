"""Offsets are an invariant: every chunk and sentence is text[start:end], by construction."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunking import OffsetTextSplitter, chunk_article, sentences_in, split_sentences
from rag.types import Article

WORD = re.compile(r"\w+|[^\w\s]")


def count(text: str) -> int:
    return len(WORD.findall(text))


def splitter(size=30, overlap=5) -> OffsetTextSplitter:
    return OffsetTextSplitter(length_function=count, chunk_size=size, chunk_overlap=overlap)


words = st.sampled_from(["the", "cost", "R1", "$5.6", "million", "model.", "Liang,", "AI",
                         "“quoted”", "naïve", "日本", "x" * 40, "end.", "—"])
paragraph = st.lists(words, min_size=1, max_size=60).map(" ".join)
separator = st.sampled_from(["\n\n", "\n", " ", "\n\n\n", "  \n"])


@st.composite
def texts(draw):
    paras = draw(st.lists(paragraph, min_size=1, max_size=12))
    if draw(st.booleans()):  # repeated paragraphs: the case str.find gets wrong
        paras = paras + paras[: draw(st.integers(1, len(paras)))]
    seps = [draw(separator) for _ in paras]
    return "".join(p + s for p, s in zip(paras, seps))


@settings(max_examples=300, deadline=None)
@given(texts(), st.integers(8, 60), st.integers(0, 6))
def test_spans_are_langchain_chunks_at_their_offsets(text, size, overlap):
    sp = splitter(size, min(overlap, size // 2 - 1))
    spans = sp.split_spans(text)
    # Oracle: LangChain's own splitter produces exactly these strings, in this order.
    assert [text[s:e] for s, e in spans] == sp.split_text(text)
    starts = [s for s, _ in spans]
    assert starts == sorted(starts)
    for s, e in spans:
        assert 0 <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()


@settings(max_examples=200, deadline=None)
@given(texts())
def test_chunks_cover_the_text_and_respect_the_size(text):
    sp = splitter(30, 5)
    chunks = chunk_article(Article(id="a", title="t", text=text, source="a"), sp)
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert count(c.text) <= 30
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_repeated_paragraphs_get_their_own_offsets():
    para = "The same paragraph, word for word, appears here again."
    text = "\n\n".join([para] * 6)
    chunks = chunk_article(Article(id="a", title="t", text=text, source="a"), splitter(12, 0))
    assert len(chunks) == 6
    assert [c.start for c in chunks] == [i * (len(para) + 2) for i in range(6)]
    assert all(c.text == para for c in chunks)


@settings(max_examples=200, deadline=None)
@given(texts())
def test_sentences_are_trimmed_ordered_spans(text):
    spans = split_sentences(text)
    last = 0
    for a, b in spans:
        assert last <= a < b <= len(text)
        assert text[a:b] == text[a:b].strip() and "\n" not in text[a:b]
        last = b
    for s, e in splitter().split_spans(text):
        for a, b in sentences_in(spans, s, e):
            assert s <= a < b <= e


def test_sentence_split_of_news_text():
    text = "DeepSeek’s Origins\nFounded in late 2023 by Liang Wenfeng. It costs $5.6 million. Why?"
    got = [text[a:b] for a, b in split_sentences(text)]
    assert got == ["DeepSeek’s Origins", "Founded in late 2023 by Liang Wenfeng.",
                   "It costs $5.6 million.", "Why?"]
