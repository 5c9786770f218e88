"""Correctness of the speed work: the ONNX backends, the IVF index, the pipelined build.
(No wall-clock limits here: speed is measured by ``python -m benchmarks.run``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import model as embed
from rag.index import build as indexer
from rag.index import dense as vectors
from rag.config import Config

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "The Bank of England raised interest rates to 4.75% on Thursday. Analysts had "
    "expected the move, citing house prices and strong consumer spending.",
    "Chelsea beat Arsenal 2-1 at Stamford Bridge. John Terry scored the winner in the "
    "final minute.",
    "Short one.",
    "Apple said sales of the iPod rose sharply over Christmas, lifting profits. " * 12,
]
SPANS = [[(0, 59), (60, len(TEXTS[0]))], [(0, 43), (44, len(TEXTS[1]))], [(0, 10)],
         [(0, 74), (75, 149)]]


@pytest.fixture(scope="module")
def vecs():
    """Chunk and sentence vectors of TEXTS from torch, ONNX fp32 and ONNX int8."""
    out = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        e = embed.MiniLMEmbedder(threads=2, backend=backend)
        out[backend] = (e.model_id, *e.embed_passages(TEXTS, SPANS),
                        e.embed_queries(["Who scored the winner for Chelsea?"]))
    return out


def _cos(a, b):
    return np.sum(a * b, axis=-1)


@pytest.mark.model
def test_onnx_fp32_matches_torch(vecs):
    t_id, t_chunks, t_sents, t_q = vecs["torch"]
    o_id, o_chunks, o_sents, o_q = vecs["onnx"]
    assert o_id == t_id  # equivalent vectors share the model id (an index serves both)
    assert _cos(t_chunks, o_chunks).min() >= 0.999
    assert np.abs(t_chunks - o_chunks).max() < 1e-4
    for a, b in zip(t_sents, o_sents):
        assert a.shape == b.shape and _cos(a, b).min() >= 0.999
    assert _cos(t_q, o_q).min() >= 0.999
    norms = np.linalg.norm(o_chunks, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


@pytest.mark.model
def test_onnx_int8_is_close_but_has_its_own_model_id(vecs):
    t_id, t_chunks, _, _ = vecs["torch"]
    q_id, q_chunks, q_sents, _ = vecs["onnx-int8"]
    assert q_id != t_id and "int8" in q_id
    assert _cos(t_chunks, q_chunks).min() >= 0.95
    # the right neighbour still wins: each passage is nearest to itself across models
    assert (np.argmax(q_chunks @ t_chunks.T, axis=1) == np.arange(len(TEXTS))).all()


@pytest.mark.model
def test_onnx_query_path_imports_neither_torch_nor_transformers(vecs):
    code = ("import sys; from rag.config import Config; "
            "from rag.embedding.model import get_embedder; "
            "v = get_embedder(Config(threads=2, backend='onnx')).embed_queries(['hello world']); "
            "print(v.shape, 'torch' in sys.modules, 'transformers' in sys.modules, "
            "'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1,", "384)", "False", "False", "False"]


@pytest.mark.model
def test_onnx_export_lives_in_a_cache_not_site_packages(vecs):
    from rag.embedding.onnx_runtime import onnx_path
    from rag.embedding.weights import export_dir

    path = onnx_path(False)
    assert path.is_file() and path.parent == export_dir()
    assert "site-packages" not in str(path)
    info = json.loads((path.parent / "export.json").read_text())
    assert info["max_abs_diff_vs_torch"] < 1e-4


@pytest.mark.model
def test_onnx_falls_back_to_torch_without_onnxruntime(monkeypatch, capsys):
    monkeypatch.setattr(embed, "_have_onnxruntime", lambda: False)
    e = embed.MiniLMEmbedder(backend="onnx")
    assert e.backend == "torch"
    assert "falls back to torch" in capsys.readouterr().err


def test_unknown_backend_is_refused():
    from rag.types import RagError

    with pytest.raises(RagError, match="backend"):
        embed.MiniLMEmbedder(backend="tpu")


# -- vector index ---------------------------------------------------------------

def _clustered(n, rng, centres, spread=1.3):
    x = centres[rng.integers(0, len(centres), n)]
    x = x + spread * rng.standard_normal((n, x.shape[1])).astype(np.float32) / np.sqrt(x.shape[1])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_recall_against_exact_on_clustered_vectors(tmp_path):
    import faiss

    rng = np.random.default_rng(7)
    centres = rng.standard_normal((60, 384)).astype(np.float32)
    data = _clustered(30_000, rng, centres)
    queries = _clustered(200, rng, centres)  # not in the index
    index, info = vectors.build_index(data, 384, min_ann=10_000)
    assert info["type"] == "ivf" and info["calibration_recall_at_10"] >= vectors.TARGET_RECALL
    assert info["nprobe"] == min(2 * info["calibrated_nprobe"], info["nlist"])
    faiss.write_index(index, str(tmp_path / "v.faiss"))
    loaded = vectors.load(tmp_path / "v.faiss", info)
    assert faiss.extract_index_ivf(loaded).nprobe == info["nprobe"] < info["nlist"]
    truth = vectors.exact_top(data, queries, 10)
    _, found = loaded.search(queries, 10)
    assert vectors.recall_at(found, truth) >= 0.98
    flat = faiss.IndexFlatIP(384)
    flat.add(data)
    _, exact = flat.search(queries, 10)
    assert vectors.recall_at(exact, truth) >= 0.999  # the numpy reference is exact search


def test_small_sets_stay_exact():
    rng = np.random.default_rng(0)
    data = _clustered(500, rng, rng.standard_normal((5, 384)).astype(np.float32))
    index, info = vectors.build_index(data, 384)
    assert info == {"type": "flat", "metric": "inner_product", "exact": True}
    _, ids = index.search(data[:3], 1)
    assert ids[:, 0].tolist() == [0, 1, 2]


def _write_articles(cfg: Config, n: int) -> None:
    words = ("market bank football election music film court oil school river budget "
             "league album minister shares striker tax vote").split()
    for i in range(n):
        body = " ".join(f"{words[(i + j) % len(words)]}{j % 7}" for j in range(60))
        (cfg.source / f"a{i:03d}.txt").write_text(f"Article {i}\n\n{body}. The end of {i}.\n")


def test_manifest_records_index_type_and_ivf_serves_ask(cfg, fake_embedder, monkeypatch):
    import rag
    from rag.index.segments import open_index

    _write_articles(cfg, 40)
    rag.build(config=cfg)
    assert open_index(cfg.index_dir).manifest["vector_index"]["type"] == "flat"
    monkeypatch.setattr(vectors, "ANN_MIN_CHUNKS", 20)
    (cfg.source / "a000.txt").write_text("Article zero\n\nThe striker joined the league.\n")
    report = rag.build(config=cfg, optimize=True)  # one segment of every passage
    idx = open_index(cfg.index_dir)
    info = idx.manifest["vector_index"]
    assert report.chunks >= 20 and info["type"] == "ivf" and info["nprobe"] >= 1
    assert idx.faiss.ntotal == report.chunks
    answer = rag.ask("Which striker joined the league?", config=cfg)
    assert answer.citations and answer.citations[0].article_id == "a000.txt"


def test_pipelined_chunking_gives_the_same_index(cfg, fake_embedder, monkeypatch, tmp_path):
    import rag
    from rag.index.segments import open_index

    _write_articles(cfg, 12)
    rag.build(config=cfg)
    whole = open_index(cfg.index_dir)
    monkeypatch.setattr(indexer, "EMBED_GROUP", 3)  # many hand-overs
    other = cfg.replace(index_dir=tmp_path / "index2")
    rag.build(config=other)
    parts = open_index(other.index_dir)
    assert np.array_equal(whole.chunks, parts.chunks)
    assert np.array_equal(whole.chunk_vectors, parts.chunk_vectors)
    assert np.array_equal(whole.sentence_vectors, parts.sentence_vectors)


def test_error_in_chunking_thread_reaches_the_caller(cfg, fake_embedder, monkeypatch):
    import threading

    import rag

    _write_articles(cfg, 5)

    def broken(text):
        raise ValueError("splitter exploded")

    monkeypatch.setattr(indexer, "split_sentences", broken)
    with pytest.raises(ValueError, match="splitter exploded"):
        rag.build(config=cfg)
    assert not any(t.name == "rag-chunking" for t in threading.enumerate())
