"""Any local sentence-transformers model (rag/embedding/folder.py, issue 27 item 1):
``RAG_MODEL=/path`` builds and answers with a model folder, with its prompts and its own
limits; the index records the folder's identity and refuses another model or a changed
folder. The model is a 2-layer BERT with random weights made here (never a download)."""

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
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(hf / "vocab.txt"), do_lower_case=True).save_pretrained(hf)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=seq)
    st = SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Normalize()],
                             prompts=prompts or {}, device="cpu")
    st.save(str(folder))
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("st") / "tiny-bert",
                      {"query": "query: ", "document": "passage: "})


def config(tmp_path: Path, model: str) -> Config:
    src = tmp_path / "articles"
    src.mkdir(exist_ok=True)
    for name, text in ARTICLES.items():
        (src / name).write_text(text, encoding="utf-8")
    return Config(source=src, index_dir=tmp_path / "index", model=model, chunk_tokens=40,
                  chunk_overlap=5, abstain_threshold=0.0, selector=False)


def test_a_model_folder_builds_and_answers_with_exact_offsets(model_dir, tmp_path):
    cfg = config(tmp_path, str(model_dir))
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
