"""The MCP server (rag.app.mcp): its tools through the SDK's own client, in process, over
streamable HTTP (with and without the bearer token) and over stdio (a subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402

from rag.app import mcp as rag_mcp  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.types import FILTER_HELP, NO_ANSWER  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

SEED_ID = "deepseek-r1-disrupts-tech-industry.txt"
QUESTION = "How much did it cost to train R1?"
FILTERS = {"sources", "authors", "since", "until", "article_ids", "folders"}
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(seed_index):
    return rag_mcp.create_server(seed_index)


def session(server, *calls: tuple[str, dict]):
    """Call the tools in order in one in-process client session; the CallToolResults."""
    async def go():
        async with Client(server) as client:
            return [await client.call_tool(name, args) for name, args in calls]
    return anyio.run(go)


def call(server, name: str, **args):
    return session(server, (name, args))[0]


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    text = "".join(c.text for c in result.content)
    assert "Traceback" not in text and 'File "' not in text
    return text


# -- the tools -----------------------------------------------------------------------------

def test_exactly_three_tools_with_the_filters_in_their_input_schemas(server):
    async def go():
        async with Client(server) as client:
            return (await client.list_tools()).tools
    tools = {t.name: t for t in anyio.run(go)}
    assert set(tools) == {"ask", "search", "get_article"}
    ask, search, article = tools["ask"], tools["search"], tools["get_article"]
    assert {"question", "k", "as_of", "dates"} | FILTERS == set(ask.input_schema["properties"])
    assert ask.input_schema["required"] == ["question"]
    assert {"query", "k"} | FILTERS == set(search.input_schema["properties"])
    assert {"id", "start", "end"} == set(article.input_schema["properties"])
    for tool in (ask, search):  # the one filter help (rag.types.FILTER_HELP), as the API's
        for field, help_text in FILTER_HELP.items():
            assert tool.input_schema["properties"][field]["description"] == help_text
    for tool in tools.values():
        assert tool.output_schema and tool.annotations.read_only_hint
    assert {"answer_status", "statement", "text", "citations"} <= set(
        ask.output_schema["properties"])
    for words in ("verbatim", "abstained", "article_id", "start", "end", "do not answer"):
        assert words in ask.description


def test_ask_quotes_text_whose_offsets_match_get_article(server, seed_index):
    (asked,) = session(server, ("ask", {"question": QUESTION, "k": 3}))
    assert not asked.is_error
    a = asked.structured_content
    assert a["answer_status"] == "answered" and not a["abstained"]
    assert "$5.6 million" in a["text"] and "verbatim" in a["statement"]
    assert json.loads(asked.content[0].text) == a  # the same JSON for text-only clients
    c = a["citations"][0]
    assert (c["article_id"], c["start"], c["end"]) == (a["article_id"], a["start"], a["end"])
    whole, piece = session(server, ("get_article", {"id": c["article_id"]}),
                           ("get_article", {"id": c["article_id"], "start": c["start"],
                                            "end": c["end"]}))
    art = whole.structured_content
    assert art["text"][c["start"]:c["end"]] == c["quote"] == a["text"]
    assert art["text"][c["passage_start"]:c["passage_end"]] == c["passage"]
    assert art["text"] == (seed_index.source / SEED_ID).read_text(encoding="utf-8")
    assert (art["start"], art["end"], art["length"]) == (0, len(art["text"]), len(art["text"]))
    assert not art["truncated"] and art["title"].startswith("Chinese AI DeepSeek R1")
    p = piece.structured_content
    assert (p["text"], p["start"], p["end"]) == (c["quote"], c["start"], c["end"])


def test_an_off_topic_question_abstains_with_the_statement(server):
    a = call(server, "ask", question="How do volcanoes form basalt from magma in the "
                                     "Earth's mantle?").structured_content
    assert a["answer_status"] == "abstained" and a["abstained"] and a["text"] == ""
    assert NO_ANSWER in a["statement"] and "do not answer from them" in a["statement"]
    assert a["article_id"] is None and a["start"] is None
    assert all(not c["answers"] for c in a["citations"])


def test_search_returns_verbatim_passages(server):
    (found,) = session(server, ("search", {"query": "Nvidia share price", "k": 3}))
    r = found.structured_content
    assert 1 <= len(r["passages"]) <= 3 and r["message"] == ""
    ids = {p["article_id"] for p in r["passages"]}
    arts = session(server, *[("get_article", {"id": i}) for i in sorted(ids)])
    texts = {a.structured_content["id"]: a.structured_content["text"] for a in arts}
    for n, p in enumerate(r["passages"], 1):
        assert p["n"] == n and p["text"] == texts[p["article_id"]][p["start"]:p["end"]]


def test_a_filter_matching_nothing_abstains_and_searches_nothing(server):
    asked, found = session(server, ("ask", {"question": QUESTION, "sources": ["Le Monde"]}),
                           ("search", {"query": "Nvidia", "sources": "Le Monde"}))
    a = asked.structured_content
    assert a["answer_status"] == "abstained" and a["explain"]["reason"] == "filtered_out"
    assert "No article matches the filters (source: Le Monde)" in a["statement"]
    assert NO_ANSWER in a["statement"] and a["filters"]["sources"] == ["Le Monde"]
    r = found.structured_content
    assert r["passages"] == [] and "no article matches the filters" in r["message"]


def test_filters_that_match_still_answer(server):
    a = call(server, "ask", question=QUESTION, article_ids=SEED_ID,
             folders=[]).structured_content
    assert a["answer_status"] == "answered" and a["scope"] == f"article: {SEED_ID}"


@pytest.mark.parametrize("name,args,words", [
    ("ask", {"question": QUESTION, "since": "yesterday-ish"}, "cannot read 'yesterday-ish'"),
    ("search", {"query": "Nvidia", "since": "yesterday-ish"}, "cannot read 'yesterday-ish'"),
    ("ask", {"question": QUESTION, "since": "2025-02-01", "until": "2025-01-01"}, "reversed"),
    ("ask", {"question": "  "}, "please type a question"),
    ("ask", {"question": QUESTION, "k": 0}, "k must be a whole number from 1 to 50"),
    ("search", {"query": "Nvidia", "k": 1000}, "k must be a whole number"),
    ("get_article", {"id": "no/such/article.txt"}, "no article with id 'no/such/article.txt'"),
    ("get_article", {"id": ""}, "give an article id"),
    ("get_article", {"id": SEED_ID, "start": 20, "end": 10}, "start (20) must not be after end"),
    ("get_article", {"id": SEED_ID, "start": -1}, "must be 0 or more"),
    ("get_article", {"id": SEED_ID, "start": 0, "end": 10**9}, "past the end of the article"),
])
def test_bad_calls_are_tool_errors_with_a_message(server, name, args, words):
    text = error_text(call(server, name, **args))
    assert words in text, text


def test_a_question_over_the_one_limit_is_a_tool_error_with_its_message(tmp_path):
    cfg = Config(source=tmp_path, index_dir=tmp_path / "none")
    limit = cfg.max_question_chars
    question = (QUESTION + " ") * (limit // len(QUESTION) + 1)
    asked, searched = session(rag_mcp.create_server(cfg), ("ask", {"question": question}),
                              ("search", {"query": question}))
    says = f"the question is too long ({len(question):,} characters; at most {limit:,})"
    # the SDK puts "Error executing tool ask: " before the message
    assert error_text(asked).endswith(": " + says) and error_text(searched).endswith(": " + says)


def test_an_unbuilt_index_is_a_tool_error(tmp_path):
    empty = rag_mcp.create_server(Config(source=tmp_path, index_dir=tmp_path / "none"))
    asked, article = session(empty, ("ask", {"question": QUESTION}),
                             ("get_article", {"id": SEED_ID}))
    assert "no index in" in error_text(asked) and "no index in" in error_text(article)


def test_long_slices_are_cut_and_say_where_to_go_on(seed_index):
    small = rag_mcp.create_server(seed_index, max_article_chars=100)
    first, second, whole = session(small, ("get_article", {"id": SEED_ID}),
                                   ("get_article", {"id": SEED_ID, "start": 100}),
                                   ("get_article", {"id": SEED_ID, "start": 5, "end": 50}))
    a, b, c = (r.structured_content for r in (first, second, whole))
    text = (seed_index.source / SEED_ID).read_text(encoding="utf-8")
    assert a["truncated"] and (a["start"], a["end"]) == (0, 100) and a["text"] == text[:100]
    assert "start=100" in a["message"] and a["length"] == len(text)
    assert b["text"] == text[100:200] and b["end"] == 200
    assert not c["truncated"] and c["text"] == text[5:50]


def test_the_blocking_work_runs_in_worker_threads(seed_index, monkeypatch):
    import rag.answer.pipeline as pipeline

    seen = []
    real = pipeline.get_article

    def spy(*args, **kwargs):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    # create_server binds the pipeline's functions when called: a new server sees the spy
    monkeypatch.setattr(pipeline, "get_article", spy)
    assert not call(rag_mcp.create_server(seed_index), "get_article", id=SEED_ID).is_error
    assert seen == [False]


# -- HTTP -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serving:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning",
                                                    timeout_graceful_shutdown=3))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}/mcp"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "no server"
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def main_app(monkeypatch, argv: list[str]):
    """What ``rag-mcp`` would serve: run main() with uvicorn.run caught."""
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    assert rag_mcp.main(argv) == 0
    return served


def ask_over_http(url: str, headers: dict[str, str] | None = None) -> dict:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async def go():
        async with httpx2.AsyncClient(headers=headers or {}, timeout=60) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            asked = await client.call_tool("ask", {"question": QUESTION})
            a = asked.structured_content
            art = await client.call_tool("get_article", {"id": a["article_id"],
                                                         "start": a["start"], "end": a["end"]})
            return names, a, art.structured_content
    names, a, art = anyio.run(go)
    assert names == {"ask", "search", "get_article"}
    assert a["answer_status"] == "answered" and art["text"] == a["text"]
    return a


def test_http_transport_on_loopback(seed_index, monkeypatch):
    monkeypatch.delenv("RAG_API_TOKEN", raising=False)
    port = free_port()
    served = main_app(monkeypatch, ["--transport", "http", "--index", str(seed_index.index_dir),
                                    "--port", str(port)])
    assert (served["host"], served["port"]) == ("127.0.0.1", port)
    assert served["app"].token is None  # the guard: loopback clients and names only
    with Serving(served["app"], port) as url:
        assert "$5.6 million" in ask_over_http(url)["text"]


def test_http_with_a_token_needs_the_bearer_header(seed_index, monkeypatch):
    import httpx

    monkeypatch.setenv("RAG_API_TOKEN", TOKEN)
    port = free_port()
    served = main_app(monkeypatch, ["--transport", "http", "--index", str(seed_index.index_dir),
                                    "--port", str(port)])
    assert served["app"].token == TOKEN
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    with Serving(served["app"], port) as url:
        for auth in (None, "Bearer wrong-token-0123456789", TOKEN, f"Basic {TOKEN}"):
            headers = {**accept, **({"Authorization": auth} if auth else {})}
            r = httpx.post(url, json=init, headers=headers, timeout=10)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in r.json()["error"] and r.json()["code"] == "unauthorized"
        ok = httpx.post(url, json=init, headers={**accept, "Authorization": f"Bearer {TOKEN}"},
                        timeout=10)
        assert ok.status_code == 200
        ask_over_http(url, {"Authorization": f"Bearer {TOKEN}"})


def test_http_beyond_loopback_needs_a_token(monkeypatch, capsys, tmp_path):
    import uvicorn

    monkeypatch.delenv("RAG_API_TOKEN", raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("it listened"))
    port = free_port()
    argv = ["--transport", "http", "--host", "0.0.0.0", "--port", str(port),
            "--index", str(tmp_path / "index")]
    assert rag_mcp.main(argv) == 2
    assert "RAG_API_TOKEN" in capsys.readouterr().err
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens
    monkeypatch.setenv("RAG_API_TOKEN", "short")
    assert rag_mcp.main(argv) == 2
    assert "too short" in capsys.readouterr().err
    monkeypatch.setenv("RAG_API_TOKEN", "a token with spaces in it")
    assert rag_mcp.main(argv) == 2
    assert "spaces" in capsys.readouterr().err


def test_loopback_addresses():
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert rag_mcp.is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.2", "example.com", ""):
        assert not rag_mcp.is_loopback(host), host


# -- the command ----------------------------------------------------------------------------

def test_rag_mcp_over_stdio(seed_index):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "rag.app.mcp", "--index", str(seed_index.index_dir)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=str(ROOT))

    async def go():
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            art = await client.call_tool("get_article", {"id": SEED_ID, "start": 0, "end": 40})
            return names, art
    names, art = anyio.run(go)
    assert names == {"ask", "search", "get_article"}
    text = (seed_index.source / SEED_ID).read_text(encoding="utf-8")
    assert art.structured_content["text"] == text[:40]


def test_without_the_sdk_it_says_how_to_install_it():
    code = ("import sys; sys.modules['mcp'] = None; import rag.app.mcp as m; "
            "sys.exit(m.main(['--index', 'nowhere']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "rag-mcp needs the MCP SDK: pip install 'rag-quotes[mcp]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_ask_takes_as_of_and_dates_like_the_cli(server):
    read = call(server, "ask", question="What did DeepSeek release last week?",
                as_of="2025-02-01").structured_content
    assert "last week" in read["scope"]  # the seed article has no date: said so
    ignored = call(server, "ask", question="What did DeepSeek release last week?",
                   dates=False).structured_content
    assert ignored["scope"] == "" and ignored["filters"] is None
    assert "as_of must be a date" in error_text(call(server, "ask", question="R1?",
                                                     as_of="next Tuesday"))
