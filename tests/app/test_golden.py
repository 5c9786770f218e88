"""Golden files (issue 25, item 6): the shapes every surface promises, compared whole.

The `--json` Answer and the `--explain` text of one question over a fixed folder (the
fake embedder: deterministic), the REST API's OpenAPI schema and the MCP tools' schemas.
A change to any of them shows here as a diff to review; when it is meant, regenerate with
``RAG_UPDATE_GOLDEN=1 ./scripts/test tests/app/test_golden.py`` and commit the files."""

from __future__ import annotations

import json
import os

import anyio
import pytest

import rag
from rag.cli import render_text
from tests.conftest import DATA

GOLDEN = DATA / "golden"
UPDATE = os.environ.get("RAG_UPDATE_GOLDEN") == "1"
TEXT = ("Harbour report\n\nThe harbour of Ardent opened in 1901 after six years of work. "
        "It was built by the engineer Lena Brandt.\n\nFerries leave for the islands every "
        "hour, and the fishing fleet sails at dawn.\n")


def check(name: str, got: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{path} was missing and has been written: review and commit it")
    assert got == path.read_text(encoding="utf-8"), (
        f"{name} changed: review the difference; regenerate with RAG_UPDATE_GOLDEN=1")


@pytest.fixture
def harbour(cfg):
    (cfg.source / "harbour.txt").write_text(TEXT, encoding="utf-8")
    rag.build(config=cfg)
    return cfg


def test_the_json_answer_and_the_explanation(harbour):
    a = rag.ask("Who built the harbour of Ardent?", config=harbour, as_of="2026-12-01")
    data = a.to_dict()
    data.pop("timings_ms")
    check("answer.json", json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    check("explain.txt", render_text(a, True) + "\n")


def test_the_openapi_schema(cfg):
    from rag.app.web import create_app

    spec = create_app(cfg, ui=False).openapi()
    spec["info"].pop("version", None)
    check("openapi.json", json.dumps(spec, indent=1, sort_keys=True) + "\n")


def test_the_mcp_tool_schemas(cfg):
    pytest.importorskip("mcp")
    from mcp import Client

    from rag.app import mcp as rag_mcp

    async def tools():
        async with Client(rag_mcp.create_server(cfg)) as client:
            return (await client.list_tools()).tools

    shapes = {t.name: {"description": t.description, "input": t.input_schema,
                       "output": t.output_schema} for t in anyio.run(tools)}
    check("mcp_tools.json", json.dumps(shapes, indent=1, sort_keys=True) + "\n")
