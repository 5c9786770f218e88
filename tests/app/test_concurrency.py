"""Concurrency and load, with the real model on the seed index.

* ``rag.ask`` from 8 threads at once returns exactly the answers of one thread.
* A load test: the web app (FastAPI + Gradio, ``rag.app.web.create_app``) on a free loopback
  port answers 512 questions sent by 16 concurrent clients to ``POST /api/ask`` with
  zero errors, and a smaller batch through Gradio's own queue (``gradio_client``, the
  ``/answer`` endpoint); the median and p95 latency are printed (``pytest -s``).
  Bounded in count (fixed number of requests) and in time (each request times out).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import rag

pytestmark = pytest.mark.model

QUESTIONS = [
    "How much did it cost to train R1?",
    "Who founded DeepSeek?",
    "What did Marc Andreessen call DeepSeek R1?",
    "Which AI models is R1 compared with?",
    "How much did Nvidia stock drop in premarket trading?",
    "How much does Meta plan to invest in AI this year?",
    "Who is Keith Lerner?",
    "How many downloads does the DeepSeek app have?",
    "When was DeepSeek founded?",
    "What is the name of Liang Wenfeng's hedge fund?",
    "Is the R1 model open source?",
    "What did Joe Biden do before leaving office?",
    "What is the capital of Australia?",          # not in the article
    "How do I bake sourdough bread?",             # not in the article
    "DeepSeek",                                   # one word
    "Wie viel hat das Training von R1 gekostet?",  # another language
]
CLIENTS = 16
PER_CLIENT = 32  # 512 questions in all
GRADIO_PER_CLIENT = 2  # 32 more through Gradio's queue


def test_eight_threads_get_the_answers_of_one_thread(seed_index):
    cfg = seed_index
    expected = [rag.ask(q, config=cfg) for q in QUESTIONS]
    assert any(not a.abstained for a in expected) and all(a.citations for a in expected)
    work = QUESTIONS * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda q: rag.ask(q, config=cfg), work))
    assert got == expected * 3


def _post(url: str, question: str) -> tuple[int, dict, float]:
    body = json.dumps({"question": question}).encode()
    req = urllib.request.Request(url + "/api/ask", data=body,
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, data = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        status, data = exc.code, {"error": exc.read().decode(errors="replace")}
    return status, data, (time.perf_counter() - t0) * 1000


def _run_clients(client, n: int) -> float:
    """Run ``client(0..n-1)`` in ``n`` threads at once; the wall seconds until all end."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _summary(name: str, latencies: list[float], seconds: float) -> str:
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    return (f"{name}: {len(lat)} requests from {CLIENTS} clients in {seconds:.1f} s "
            f"({len(lat) / seconds:.1f}/s): median {statistics.median(lat):.0f} ms, "
            f"p95 {p95:.0f} ms, max {lat[-1]:.0f} ms")


def test_load_16_clients_512_questions_zero_errors(seed_index):
    from rag.app.web import BackgroundServer, create_app

    cfg = seed_index
    expected = {q: rag.ask(q, config=cfg) for q in QUESTIONS}
    # the 16 clients share one address: the per-client rate limit (120 a minute by
    # default, tested in test_api.py) would turn this load test into a rate-limit test
    app = create_app(cfg.replace(rate_limit=0))
    with BackgroundServer(app, host="127.0.0.1", port=0) as url:
        assert url.startswith("http://127.0.0.1:")
        _post(url, QUESTIONS[0])  # warm up
        results: list[tuple[int, dict, float, str]] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            for i in range(PER_CLIENT):
                q = QUESTIONS[(c * 7 + i) % len(QUESTIONS)]
                status, data, ms = _post(url, q)
                with lock:
                    results.append((status, data, ms, q))

        seconds = _run_clients(client, CLIENTS)

        errors = [(s, d) for s, d, _, _ in results if s != 200]
        assert len(results) == CLIENTS * PER_CLIENT and errors == []
        for _, data, _, q in results:  # and every answer is the one rag.ask gives
            got = rag.Answer.from_dict({**data, "timings_ms": {}})
            assert got == expected[q], q
        line = _summary("POST /api/ask", [ms for _, _, ms, _ in results], seconds)
        print("\n" + line)

        # the same questions through Gradio's queue, the UI's own path
        from gradio_client import Client

        g_lat, g_err = [], []

        # clients connect one after the other (setting up is not what is measured)
        clients = [Client(url + "/", verbose=False, httpx_kwargs={"timeout": 120})
                   for _ in range(CLIENTS)]

        def gradio_client(c: int) -> None:
            client = clients[c]
            for i in range(GRADIO_PER_CLIENT):
                q = QUESTIONS[(c + i) % len(QUESTIONS)]
                t = time.perf_counter()
                try:
                    out = client.predict(q, 5, "hybrid", api_name="/answer")
                    if out["text"] != expected[q].text or out["abstained"] != \
                            expected[q].abstained:
                        g_err.append((q, out))
                except Exception as exc:  # noqa: BLE001 - any failure counts
                    g_err.append((q, repr(exc)))
                with lock:
                    g_lat.append((time.perf_counter() - t) * 1000)
            client.close()

        g_seconds = _run_clients(gradio_client, CLIENTS)
        assert g_err == [] and len(g_lat) == CLIENTS * GRADIO_PER_CLIENT
        line2 = _summary("gradio_client /answer", g_lat, g_seconds)
        print(line2)
    report = os.environ.get("RAG_LOAD_REPORT")
    if report:  # for the record: where the figures were measured
        with open(report, "a", encoding="utf-8") as f:
            f.write(line + "\n" + line2 + "\n")
