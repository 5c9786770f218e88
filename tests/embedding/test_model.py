"""Integration with the real bundled model on the seed article."""

from __future__ import annotations

import numpy as np
import pytest

import rag
from rag.index.segments import open_index

SEED_ID = "deepseek-r1-disrupts-tech-industry.txt"

QUESTIONS = [
    ("How much did it cost to train R1?", "$5.6 million"),
    ("Who founded DeepSeek?", "Liang Wenfeng"),
    ("How much does Meta plan to invest in AI this year?", "$65 billion"),
    ("How much did Nvidia drop in premarket trading?", "12%"),
    ("How many downloads does the DeepSeek app have?", "2 million"),
    ("Which investor called DeepSeek AI's Sputnik moment?", "Marc Andreessen"),
]


@pytest.mark.parametrize("question,fact", QUESTIONS)
def test_seed_questions_are_answered_with_the_fact(seed_index, question, fact):
    a = rag.ask(question, config=seed_index)
    assert not a.abstained, (question, a.score, a.citations[0].quote)
    assert fact in a.text
    c = a.citations[0]
    text = (seed_index.source / SEED_ID).read_text(encoding="utf-8")
    assert c.article_id == SEED_ID and c.source == SEED_ID
    assert c.quote == text[c.start:c.end] == a.text
    assert c.title.startswith("Chinese AI DeepSeek R1")


@pytest.mark.parametrize("question", [
    "What is the boiling point of mercury?",
    "Who won the 1966 football World Cup?",
    "How do I bake sourdough bread?",
])
def test_off_topic_questions_abstain(seed_index, question):
    a = rag.ask(question, config=seed_index)
    assert a.abstained and a.text == ""
    assert a.citations and not a.citations[0].answers


def test_no_chunk_is_truncated_by_the_model(seed_index):
    from rag.embedding.model import get_embedder

    e = get_embedder(seed_index)
    idx = open_index(seed_index.index_dir)
    lengths = [e.count_tokens(idx.article(r).text[s:t]) for r, s, t in idx.chunks[:, :3].tolist()]
    assert max(lengths) + 2 <= e.max_seq_length


def test_late_chunked_chunk_vectors_equal_sentence_transformers(seed_index):
    from sentence_transformers import SentenceTransformer

    from rag.embedding.weights import model_dir

    idx = open_index(seed_index.index_dir)
    texts = [idx.article(r).text[s:t] for r, s, t in idx.chunks[:4, :3].tolist()]
    ref = SentenceTransformer(model_dir(), device="cpu").encode(texts, normalize_embeddings=True)
    if seed_index.backend == "onnx-int8":  # int8 vectors differ by design: check fp32 pooling
        from rag.embedding.model import MiniLMEmbedder

        ours, _ = MiniLMEmbedder(backend="onnx").embed_passages(texts, [[] for _ in texts])
        assert np.allclose(ours, ref, atol=1e-5)
        assert (np.sum(idx.chunk_vectors[:4] * ref, axis=1) > 0.98).all()
    else:
        assert np.allclose(idx.chunk_vectors[:4], ref, atol=1e-5)


@pytest.mark.model
def test_int8_vectors_do_not_depend_on_the_batch_so_incremental_equals_full(tmp_path):
    """One passage per run: an article's vectors are the same whichever passages were
    embedded with it, so an incremental build is bitwise a full rebuild (issue: int8
    activations are quantised per run)."""
    import shutil

    from tests.conftest import SEEDS, STEELWORKS
    from rag.config import Config

    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    cfg = Config(source=src, index_dir=tmp_path / "incremental")
    assert cfg.backend == "onnx-int8"
    rag.build(config=cfg)
    (src / "steelworks.txt").write_text("Steelworks homes approved\n\n" + STEELWORKS,
                                        encoding="utf-8")
    report = rag.build(config=cfg, optimize=True)  # one segment, read as one index
    assert report.added == ("steelworks.txt",) and report.embedded_chunks < report.chunks
    full = cfg.replace(index_dir=tmp_path / "full")
    rag.build(config=full, rebuild=True)
    a, b = open_index(cfg.index_dir), open_index(full.index_dir)
    assert sorted(a.article_ids) == sorted(b.article_ids)

    def rows_of(index, aid):  # one article's passages, sentences and vectors
        rows = np.flatnonzero(np.asarray(index.chunks[:, 0]) == index.article_ids.index(aid))
        ch = np.asarray(index.chunks[rows])
        sents = np.arange(ch[0, 3], ch[-1, 4])
        return (ch[:, 1:3], np.asarray(index.sentences[sents]),
                np.asarray(index.chunk_vectors[rows]), np.asarray(index.sentence_vectors[sents]))

    for aid in b.article_ids:  # bit for bit, whatever the article's row
        for x, y in zip(rows_of(a, aid), rows_of(b, aid)):
            assert np.array_equal(x, y)
