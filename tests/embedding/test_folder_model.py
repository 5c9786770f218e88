"""Any local sentence-transformers model (rag/embedding/folder.py, issue 27 item 1):
``RAG_MODEL=/path`` builds and answers with a model folder, with its prompts and its own
limits, on torch or on its ONNX export (made once per folder content, in a cache folder of
this module's own); the index records the folder's identity and refuses another model or
a changed folder. The model is a 2-layer BERT with random weights made here (never a
download)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.config import Config
from rag.embedding.model import get_embedder

pytestmark = pytest.mark.model  # torch and transformers load (not the bundled model)

ARTICLES = {
    "harbour.txt": "The harbour\n\nThe harbour opened in 1901. Ferries leave for the islands "
                   "every hour. The fishing fleet sails at dawn.",
    "museum.txt": "The museum\n\nThe museum holds 4,000 paintings. It was founded by the "
                  "merchant Ada Voss in 1887. Entry is free on Sundays.",
}


def make_model(folder: Path, prompts: dict | None = None, seq: int = 64) -> Path:
    """A tiny sentence-transformers model saved in ``folder``: WordPiece over letters
    (any English text tokenizes), BERT with 2 layers of width 32, mean pooling,
    normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    hf = folder.parent / (folder.name + "-hf")
    hf.mkdir(parents=True)
    letters = string.ascii_lowercase + string.digits
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation,
             *letters, *(f"##{c}" for c in letters), "the", "harbour", "museum"]
    # (transformers 5 ignores vocab_file here: every word became [UNK])
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    assert tok.tokenize("The harbour: query?")[:4] == ["the", "harbour", ":", "q"]
    tok.save_pretrained(hf)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=seq)
    st = SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Normalize()],
                             prompts=prompts or {}, device="cpu")
    st.save(str(folder))
    return folder


@pytest.fixture(scope="module", autouse=True)
def export_cache(tmp_path_factory):
    """ONNX exports of this module's models go to a folder of its own, not ~/.cache."""
    folder = tmp_path_factory.mktemp("rag-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, export_cache) -> Path:
    return make_model(tmp_path_factory.mktemp("st") / "tiny-bert",
                      {"query": "query: ", "document": "passage: "})


def config(tmp_path: Path, model: str, backend: str = "onnx-int8") -> Config:
    src = tmp_path / "articles"
    src.mkdir(exist_ok=True)
    for name, text in ARTICLES.items():
        (src / name).write_text(text, encoding="utf-8")
    return Config(source=src, index_dir=tmp_path / "index", model=model, chunk_tokens=40,
                  chunk_overlap=5, abstain_threshold=0.0, selector=False, backend=backend)


def test_a_model_folder_builds_and_answers_with_exact_offsets(model_dir, tmp_path):
    cfg = config(tmp_path, str(model_dir), backend="torch")
    emb = get_embedder(cfg)
    assert emb.dim == 32 and emb.max_tokens == 62
    assert (emb.query_prompt, emb.passage_prompt) == ("query: ", "passage: ")
    assert emb.model_id.startswith("st:tiny-bert:") and len(emb.model_id) == 29
    q = emb.embed_queries(["When did the harbour open?"])
    assert q.shape == (1, 32) and np.isclose(np.linalg.norm(q), 1.0, atol=1e-5)
    report = rag.build(config=cfg)
    assert report.added == ("harbour.txt", "museum.txt") and report.chunks >= 2
    from rag.index.segments import open_index

    index = open_index(cfg.index_dir)
    assert index.manifest["model"] == emb.model_id and index.manifest["dim"] == 32
    norms = np.linalg.norm(np.asarray(index.sentence_vectors, dtype=np.float32), axis=1)
    assert len(norms) >= 6 and np.allclose(norms, 1.0, atol=1e-2)  # late-chunked, unit
    # the passage vector is the model's own (prompt, pooling, normalisation)
    text = index.article(0).text
    r, s, e = (int(x) for x in index.chunks[0][:3])
    own = emb._st.encode([text[s:e]], prompt="passage: ", normalize_embeddings=True)[0]
    assert np.allclose(index.chunk_vectors[0], own, atol=1e-5)
    for mode in ("hybrid", "dense", "keyword"):
        answer = rag.ask("Who founded the museum?", config=cfg, retrieval=mode)
        assert answer.citations
        for c in answer.citations:
            art = rag.get_article(c.article_id, config=cfg)
            assert art.text[c.start:c.end] == c.quote
    assert "museum" in rag.ask("Who founded the museum?", config=cfg,
                               retrieval="keyword").citations[0].article_id


def test_another_model_or_a_changed_folder_is_refused(model_dir, tmp_path):
    import shutil

    own = tmp_path / "mine"
    shutil.copytree(model_dir, own)
    cfg = config(tmp_path, str(own))
    rag.build(config=cfg)
    with pytest.raises(rag.IndexMismatch, match="built with model 'st:mine:"):
        rag.ask("When did the harbour open?", config=cfg.replace(model=str(model_dir)))
    settings = own / "config_sentence_transformers.json"
    data = json.loads(settings.read_text())
    data["prompts"] = {"query": "search: "}
    settings.write_text(json.dumps(data))  # the folder changed: another identity
    from rag.embedding import model as embedding

    embedding._cache.clear()
    with pytest.raises(rag.IndexMismatch, match="built with model 'st:mine:.*run `python -m "
                                                "rag.build --rebuild`"):
        rag.ask("When did the harbour open?", config=cfg)
    assert rag.build(config=cfg).wrote  # the builder re-embeds with the new folder
    assert rag.ask("When did the harbour open?", config=cfg).citations


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for bad in (str(tmp_path / "empty"), "no-such-model"):
        with pytest.raises(rag.RagError, match="unknown model .* sentence-transformers model "
                                               "folder"):
            get_embedder(Config(model=bad))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(rag.RagError, match="cannot load the sentence-transformers model"):
        get_embedder(Config(model=str(broken)))


def test_the_build_command_takes_a_model_folder(model_dir, tmp_path, capsys):
    from rag.app.watch import index_status
    from rag.cli import build_main

    cfg = config(tmp_path, str(model_dir))
    assert build_main(["--source", str(cfg.source), "--index", str(cfg.index_dir),
                       "--model", str(model_dir), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["articles"] == 2
    assert index_status(cfg)["model"].startswith("st:tiny-bert:")


def test_answers_say_the_confidence_is_not_calibrated_for_another_model(model_dir, tmp_path):
    cfg = config(tmp_path, str(model_dir))
    rag.build(config=cfg)
    for threshold in (0.0, 1.0):  # answered and abstained
        answer = rag.ask("Who founded the museum?", config=cfg.replace(
            abstain_threshold=threshold))
        assert answer.abstained == (threshold == 1.0)
        assert "calibrated for the bundled MiniLM model, not for st:tiny-bert:" in \
            answer.message


# -- ONNX ---------------------------------------------------------------------

TEXTS = ["The harbour opened in 1901. Ferries leave for the islands every hour.",
         "The museum holds 4,000 paintings. It was founded by Ada Voss in 1887.",
         "Entry is free on Sundays."]
SPANS = [[(0, 27), (28, 70)], [(0, 33), (34, 70)], [(0, 25)]]


def embedders(model_dir):
    from rag.embedding.folder import folder_embedder

    return {b: folder_embedder(model_dir, backend=b) for b in ("torch", "onnx", "onnx-int8")}


def test_the_onnx_export_gives_torchs_vectors_and_int8_has_its_own_id(model_dir):
    got = embedders(model_dir)
    assert [type(e).__name__ for e in got.values()] == [
        "FolderEmbedder", "OnnxFolderEmbedder", "OnnxFolderEmbedder"]
    torch_id = got["torch"].model_id
    assert got["onnx"].model_id == torch_id  # the same vectors: an index serves both
    assert got["onnx-int8"].model_id == torch_id + " int8/e2/rows"
    for e in got.values():
        assert (e.dim, e.max_tokens) == (32, 62)
        assert (e.query_prompt, e.passage_prompt) == ("query: ", "passage: ")
        assert e.count_tokens(TEXTS[0]) == got["torch"].count_tokens(TEXTS[0])
    ref, ref_s = got["torch"].embed_passages(TEXTS, SPANS)
    fp32, fp32_s = got["onnx"].embed_passages(TEXTS, SPANS)
    q8, q8_s = got["onnx-int8"].embed_passages(TEXTS, SPANS)
    assert np.abs(ref - fp32).max() < 1e-5
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(ref_s, fp32_s))
    assert (ref * q8).sum(1).min() > 0.99 and not np.array_equal(ref, q8)
    assert [len(s) for s in q8_s] == [2, 2, 1]
    q = ["When did the harbour open?"]
    assert np.abs(got["torch"].embed_queries(q) - got["onnx"].embed_queries(q)).max() < 1e-5
    # the query prompt is read: without it the vector differs
    assert np.abs(got["onnx"].embed_queries(q) - got["onnx"].embed_passages(q, [[]])[0]
                  ).max() > 1e-3


def test_an_int8_vector_depends_on_its_text_alone(model_dir):
    from rag.embedding.folder import folder_embedder

    emb = folder_embedder(model_dir, threads=2, backend="onnx-int8")
    together, sents = emb.embed_passages(TEXTS, SPANS)
    for i, text in enumerate(TEXTS):
        alone, alone_s = emb.embed_passages([text], [SPANS[i]])
        assert np.array_equal(alone[0], together[i]) and np.array_equal(alone_s[0], sents[i])


def test_the_export_is_made_once_per_folder_content(model_dir, tmp_path, export_cache,
                                                     capsys):
    import shutil

    from rag.embedding.folder import folder_digest, folder_embedder

    folder = export_cache / "onnx" / f"st-{folder_digest(model_dir)[:16]}-e2"
    folder_embedder(model_dir, backend="onnx-int8")
    made = (folder / "export.json").stat().st_mtime_ns
    assert {"model.onnx", "model-int8.onnx"} <= {p.name for p in folder.iterdir()}
    report = json.loads((folder / "export.json").read_text())
    assert report["max_abs_diff_vs_torch"] < 1e-3 and report["int8_mean_cosine_vs_torch"] > 0.99
    folder_embedder(model_dir, backend="onnx")
    assert (folder / "export.json").stat().st_mtime_ns == made  # read, not made again
    changed = tmp_path / "tiny-bert"
    shutil.copytree(model_dir, changed)
    settings = changed / "config_sentence_transformers.json"
    settings.write_text(settings.read_text().replace("query: ", "search: "))
    capsys.readouterr()
    other = folder_embedder(changed, backend="onnx")
    assert "exporting the model in" in capsys.readouterr().err  # said once, before the wait
    folder_embedder(changed, backend="onnx")
    assert "exporting" not in capsys.readouterr().err
    assert other.query_prompt == "search: "
    assert (export_cache / "onnx" / f"st-{folder_digest(changed)[:16]}-e2").is_dir()


@pytest.mark.parametrize("change", ["dense", "max pooling", "no tokenizer.json"])
def test_a_layout_onnx_cannot_run_falls_back_to_torch_and_says_why(model_dir, tmp_path,
                                                                   change, capsys):
    import shutil

    from rag.embedding.folder import folder_embedder

    if change == "dense":
        from sentence_transformers import SentenceTransformer, models

        st = SentenceTransformer(str(model_dir), device="cpu")
        st.append(models.Dense(32, 16))
        folder = tmp_path / "projected"
        st.save(str(folder))
        reason = "its modules are Transformer + Pooling + Normalize + Dense, not Transformer"
    else:
        folder = tmp_path / "changed"
        shutil.copytree(model_dir, folder)
        if change == "max pooling":
            (folder / "1_Pooling" / "config.json").write_text(json.dumps(
                {"embedding_dimension": 32, "pooling_mode": "max", "include_prompt": True}))
            reason = "its pooling is max, not mean or CLS"
        else:
            (folder / "tokenizer.json").unlink()
            reason = "it has no tokenizer.json"
    capsys.readouterr()
    emb = folder_embedder(folder, backend="onnx-int8")
    assert type(emb).__name__ == "FolderEmbedder"
    err = capsys.readouterr().err
    assert f"runs on torch, not onnx-int8: {reason}" in err
    assert emb.embed_queries(["When?"]).shape == (1, emb.dim)


def test_a_failed_export_falls_back_to_torch_and_says_why(model_dir, monkeypatch, capsys):
    from rag.embedding import onnx_runtime
    from rag.embedding.folder import folder_embedder

    def fail(folder, target, args):
        raise RuntimeError("exporting the model to ONNX failed:\nno space left on device")

    monkeypatch.setattr(onnx_runtime, "export_once", fail)
    capsys.readouterr()
    emb = folder_embedder(model_dir, backend="onnx")
    assert type(emb).__name__ == "FolderEmbedder"
    assert "its ONNX export failed (no space left on device)" in capsys.readouterr().err


def test_the_onnx_query_path_imports_no_torch(model_dir, export_cache):
    import os
    import subprocess
    import sys

    from rag.embedding.folder import folder_embedder

    folder_embedder(model_dir, backend="onnx-int8")  # the export exists
    code = ("import sys; from rag.embedding.folder import folder_embedder; "
            f"e = folder_embedder({str(model_dir)!r}, backend='onnx-int8'); "
            "v = e.embed_queries(['When did the harbour open?']); "
            "print(type(e).__name__, v.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "RAG_CACHE": str(export_cache)}, check=True)
    assert out.stdout.split() == ["OnnxFolderEmbedder", "(1,", "32)", "False"]


def test_an_index_built_on_onnx_int8_answers_and_refuses_torchs_vectors(model_dir, tmp_path):
    cfg = config(tmp_path, str(model_dir))
    rag.build(config=cfg)
    answer = rag.ask("Who founded the museum?", config=cfg, retrieval="dense")
    for c in answer.citations:
        assert rag.get_article(c.article_id, config=cfg).text[c.start:c.end] == c.quote
    with pytest.raises(rag.IndexMismatch, match="int8/e2/rows"):
        rag.ask("Who founded the museum?", config=cfg.replace(backend="torch"))


def test_another_architecture_with_cls_pooling_runs_on_onnx(tmp_path):
    """DistilBERT: no token_type_ids input, its width named "dim", CLS pooling."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel

    from rag.embedding.folder import folder_embedder

    hf = tmp_path / "hf"
    letters = string.ascii_lowercase + string.digits
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *letters,
             *(f"##{c}" for c in letters), "the"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)},
                      do_lower_case=True).save_pretrained(hf)
    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=2,
                                     hidden_dim=64, max_position_embeddings=128)
                    ).save_pretrained(hf)
    st = SentenceTransformer(modules=[models.Transformer(str(hf), max_seq_length=64),
                                      models.Pooling(32, "cls")], device="cpu")
    st.save(str(tmp_path / "distil"))
    ref, onnx = (folder_embedder(tmp_path / "distil", backend=b) for b in ("torch", "onnx"))
    assert type(onnx).__name__ == "OnnxFolderEmbedder" and onnx.layout.pooling == "cls"
    assert onnx._inputs == ("input_ids", "attention_mask")
    a, a_s = ref.embed_passages(TEXTS, SPANS)
    b, b_s = onnx.embed_passages(TEXTS, SPANS)
    assert np.abs(a - b).max() < 1e-5
    assert all(np.abs(x - y).max() < 1e-5 for x, y in zip(a_s, b_s))
