"""The deployable API: bearer token, article routes (list/search/get/add/delete), builds
with progress, health and version, filters over HTTP, rate limit, body limit, CORS, and
bad input as 4xx JSON (``{"error", "code"}``), never a 500 or a traceback. In-process
client with the fake embedder; nothing leaves 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import rag
from rag.app.web import create_app, main

TOKEN = "t0ken-for-tests-0123456789"
ART = ("Solar power in Spain\n\nSpain installed record solar capacity in 2023. "
       "The grid operator said panels now supply a fifth of demand.")
RECORDS = [{"id": f"r{i}", "title": f"Chess report {i}", "source": "Valley Post",
            "author": "Ann Lee", "published": f"2026-11-{10 + i}",
            "text": f"Chess report {i}\n\nThe chess final in Singapore ended after game {i}. "
                    "Gukesh won the final game."} for i in range(3)]


@pytest.fixture
def api(cfg):
    (cfg.source / "a.txt").write_text(ART, encoding="utf-8")
    (cfg.source / "news.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n",
                                          encoding="utf-8")
    (cfg.source / "one.json").write_text(json.dumps(
        {"id": "lone", "title": "Rail strike", "source": "BBC News", "published": "2026-12-01",
         "text": "Rail strike\n\nTrain drivers walked out over pay."}), encoding="utf-8")
    rag.build(config=cfg)
    cfg = cfg.replace(api_token=TOKEN, rate_limit=1000)
    with TestClient(create_app(cfg)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, cfg


def _err(r, status, code=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code"} and body["error"], body
    assert "Traceback" not in r.text
    if code:
        assert body["code"] == code
    return body["error"]


# -- the token ----------------------------------------------------------------------------

def test_every_route_but_health_needs_the_token(api):
    client, _ = api
    bare = TestClient(client.app)
    for method, path in (("post", "/api/ask"), ("post", "/api/search"), ("get", "/api/articles"),
                         ("get", "/api/articles/a.txt"), ("delete", "/api/articles/a.txt"),
                         ("post", "/api/builds"), ("get", "/api/status"), ("get", "/api/feeds"),
                         ("post", "/api/sources"), ("get", "/api/version")):
        r = getattr(bare, method)(path, **({"json": {}} if method == "post" else {}))
        _err(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = bare.get("/api/articles", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
    _err(wrong, 401, "unauthorized")
    assert bare.get("/api/health").json()["status"] == "ok"
    assert client.get("/api/articles").status_code == 200
    assert (rag.__version__ == client.get("/api/version").json()["rag"])


def test_the_server_refuses_to_listen_beyond_loopback_without_a_token(cfg, monkeypatch, capsys):
    monkeypatch.delenv("RAG_API_TOKEN", raising=False)
    assert main(["--host", "0.0.0.0", "--no-build", "--index", str(cfg.index_dir)]) == 2
    assert "RAG_API_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("RAG_API_TOKEN", "short")
    assert main(["--host", "127.0.0.1", "--no-build"]) == 2
    assert "16" in capsys.readouterr().err


# -- articles -----------------------------------------------------------------------------

def test_list_and_search_articles(api):
    client, _ = api
    every = client.get("/api/articles").json()
    assert every["total"] == 5 and {a["id"] for a in every["articles"]} == \
        {"a.txt", "r0", "r1", "r2", "lone"}
    valley = client.get("/api/articles", params={"source": "valley", "since": "2026-11-11"})
    assert [a["id"] for a in valley.json()["articles"]] == ["r1", "r2"]
    assert client.get("/api/articles", params={"q": "rail STRIKE"}).json()["total"] == 1
    page = client.get("/api/articles", params={"limit": 2, "offset": 4}).json()
    assert page["total"] == 5 and len(page["articles"]) == 1
    _err(client.get("/api/articles", params={"since": "2026-12-05", "until": "2026-12-01"}),
         400, "invalid_request")
    _err(client.get("/api/articles", params={"limit": 0}), 400, "invalid_request")


def test_get_an_article_or_a_slice_verbatim(api):
    client, _ = api
    whole = client.get("/api/articles/a.txt").json()
    assert whole["text"] == ART and whole["length"] == len(ART)
    part = client.get("/api/articles/a.txt", params={"start": 22, "end": 40}).json()
    assert part["text"] == ART[22:40] and (part["start"], part["end"]) == (22, 40)
    _err(client.get("/api/articles/a.txt", params={"start": 30, "end": 10}), 400)
    _err(client.get("/api/articles/a.txt", params={"end": 10 ** 6}), 400)
    _err(client.get("/api/articles/a.txt", params={"start": -1}), 400)
    for bad in ("nope", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..%2Fa.txt"):
        _err(client.get(f"/api/articles/{bad}"), 404, "not_found")


def test_add_by_upload_and_by_url_and_delete(api, tmp_path):
    client, cfg = api
    r = client.post("/api/articles", files={"file": ("wind.txt", b"Wind farms\n\nOffshore "
                                                     b"wind farms grew fast.", "text/plain")})
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert "wind.txt" in {a["id"] for a in client.get("/api/articles").json()["articles"]}
    _err(client.post("/api/articles", files={"file": ("x.exe", b"MZ", "application/x")}),
         409, "not_added")
    _err(client.post("/api/articles", content=b"x", headers={"content-type": "text/plain"}),
         415)
    _err(client.post("/api/articles", json={"link": "https://example.org"}), 400)
    # the fetcher refuses what is not a public address: reported, nothing added
    r = client.post("/api/articles", json={"url": "http://127.0.0.1:9/story"})
    assert "not a public" in _err(r, 409, "not_added") or "refused" in r.json()["error"]
    # delete: a file, then a record that is alone in its file, then one of several
    assert client.delete("/api/articles/wind.txt").json()["ok"]
    assert not (cfg.source / "wind.txt").exists()
    assert client.delete("/api/articles/lone").json()["ok"]
    assert not (cfg.source / "one.json").exists()
    assert "records of news.jsonl" in _err(client.delete("/api/articles/r1"), 409)
    _err(client.delete("/api/articles/..%2F..%2Fetc%2Fpasswd"), 404)
    ids = {a["id"] for a in client.get("/api/articles").json()["articles"]}
    assert ids == {"a.txt", "r0", "r1", "r2"}


def test_a_build_runs_in_the_background_with_progress(api):
    client, cfg = api
    (cfg.source / "b.txt").write_text("Tides\n\nThe tide rose twice a day.", encoding="utf-8")
    r = client.post("/api/builds", json={})
    assert r.status_code in (200, 202)
    job = r.json()
    from rag.app.jobs import BuildJobs  # noqa: F401  (the shape is BuildJob)

    for _ in range(600):
        job = client.get(f"/api/builds/{job['id']}").json()
        if job["state"] != "running":
            break
        import time

        time.sleep(0.05)
    assert job["state"] == "done" and job["phase"] == "done", job
    assert job["report"]["added"] == ["b.txt"] and job["report"]["wrote"] is True
    assert job["report"]["articles"] == 6
    assert client.get("/api/builds/latest").json()["id"] == job["id"]
    _err(client.get("/api/builds/nope"), 404, "not_found")


# -- asking over HTTP ---------------------------------------------------------------------

def test_ask_and_search_with_filters_over_http(api):
    client, _ = api
    r = client.post("/api/ask", json={"question": "Who won the chess final?", "k": 3,
                                      "filters": {"sources": ["valley"],
                                                  "until": "2026-11-11"}})
    body = r.json()
    assert r.status_code == 200 and {c["article_id"] for c in body["citations"]} <= {"r0", "r1"}
    assert body["scope"] == "source: valley · published until 2026-11-11"
    assert body["explain"]["reason"] in ("answered", "below_threshold")
    assert body["citations"][0]["author"] == "Ann Lee"
    none = client.post("/api/ask", json={"question": "Who won?",
                                         "filters": {"authors": ["Nobody"]}}).json()
    assert none["abstained"] and none["explain"]["reason"] == "filtered_out"
    found = client.post("/api/search", json={"query": "solar capacity", "k": 2}).json()
    assert found[0]["article_id"] == "a.txt" and ART[found[0]["start"]:found[0]["end"]] == \
        found[0]["text"]


@pytest.mark.parametrize("body, words", [
    ({"question": "q?", "filters": {"outlet": ["x"]}}, "outlet"),
    ({"question": "q?", "filters": {"since": "2026-12-05", "until": "2026-12-01"}}, "reversed"),
    ({"question": "q?", "filters": {"since": "soonish"}}, "cannot read"),
    ({"question": "q?", "filters": {"sources": "Reuters"}}, "sources"),
    ({"question": "q?", "as_of": "tomorrow-ish"}, "as_of"),
    ({"question": "q?", "k": "many"}, "k"),
    ({"question": 5}, "question"),
])
def test_bad_asks_are_400_with_a_message(api, body, words):
    client, _ = api
    assert words in _err(client.post("/api/ask", json=body), 400, "invalid_request")


def test_oversized_bodies_unknown_routes_and_methods(api):
    client, cfg = api
    big = b'{"question": "' + b"x" * (cfg.max_upload_bytes + 70_000) + b'"}'
    _err(client.post("/api/ask", content=big, headers={"content-type": "application/json"}),
         413, "too_large")
    _err(client.get("/api/nothing-here"), 404, "not_found")
    _err(client.put("/api/articles/a.txt"), 404)
    spec = client.get("/api/openapi.json").json()
    for path in ("/api/ask", "/api/search", "/api/articles", "/api/articles/{article_id}",
                 "/api/builds", "/api/builds/{job_id}", "/api/health", "/api/version"):
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["AskRequest"]["examples"]
    from rag.types import FILTER_HELP  # one filter help for the API, MCP and the CLI

    props = spec["components"]["schemas"]["FiltersIn"]["properties"]
    assert {f: props[f]["description"] for f in FILTER_HELP} == FILTER_HELP
    assert "multipart/form-data" in spec["paths"]["/api/articles"]["post"]["requestBody"][
        "content"]


def test_rate_limit_per_client_and_cors_off_by_default(api):
    client, cfg = api
    limited = TestClient(create_app(cfg.replace(rate_limit=3)))
    limited.headers["Authorization"] = f"Bearer {TOKEN}"
    codes = [limited.get("/api/version").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = limited.get("/api/version")
    _err(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    r = client.get("/api/articles", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    cors = TestClient(create_app(cfg.replace(cors_origins="https://team.example")))
    pre = cors.options("/api/ask", headers={"Origin": "https://team.example",
                                            "Access-Control-Request-Method": "POST"})
    assert pre.headers.get("access-control-allow-origin") == "https://team.example"


def test_build_progress_phases_in_order(cfg):
    (cfg.source / "a.txt").write_text(ART, encoding="utf-8")
    seen = []
    rag.build(config=cfg, on_progress=lambda *step: seen.append(step))
    phases = [p for p, _, _ in seen]
    assert phases[0] == "fetching" and phases[-1] == "done"
    order = ["fetching", "reading", "embedding", "writing", "done"]
    assert [p for p in order if p in phases] == order
    assert sorted(phases, key=order.index) == phases
    embedding = [(d, t) for p, d, t in seen if p == "embedding"]
    assert embedding[-1][0] == embedding[-1][1] > 0
    seen.clear()
    rag.build(config=cfg, on_progress=lambda *step: seen.append(step))  # nothing changed
    assert [p for p, _, _ in seen] == ["fetching", "reading", "reading", "done"]
