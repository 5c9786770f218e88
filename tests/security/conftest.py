"""The security suite: every attack here runs against a real server on 127.0.0.1 (uvicorn
in a thread, the app built the documented way), and every server started is stopped.

Fixtures:

- ``served(cfg, **env)``: a context manager serving ``create_app(cfg)`` on a free loopback
  port, yielding its base URL (``http://127.0.0.1:PORT``).
- ``small_index``: a config (fake embedder) whose articles folder holds two short
  articles and whose index is built.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag.app.web import BackgroundServer, create_app


@contextlib.contextmanager
def serve(cfg, *, ui: bool = True, updater=None):
    with BackgroundServer(create_app(cfg, updater=updater, ui=ui), host="127.0.0.1",
                          port=0) as url:
        yield url


TESTS = Path(__file__).resolve().parents[1]
# ``python -m rag.build`` in a child, with the fake embedder of tests/conftest.py registered
RUN_BUILD = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); import conftest; "
             "runpy.run_module('rag.build', run_name='__main__', alter_sys=True)")


def run_build_cli(source: Path, index: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m rag.build --source S --index I --json --quiet`` with the fake model."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_MODEL": "fake",
            "RAG_CHUNK_TOKENS": "40", "RAG_CHUNK_OVERLAP": "5", **env}
    return subprocess.run([sys.executable, "-c", RUN_BUILD, str(TESTS), "--source",
                           str(source), "--index", str(index), "--json", "--quiet"],
                          capture_output=True, text=True, env=full)


@pytest.fixture
def served():
    return serve


@pytest.fixture
def small_index(cfg):
    (cfg.source / "nile.txt").write_text(
        "The Nile\n\nThe Nile is a major river in Africa. It flows north into the "
        "Mediterranean Sea. Its length is about 6,650 kilometres.\n", encoding="utf-8")
    (cfg.source / "moon.txt").write_text(
        "The Moon\n\nThe Moon orbits the Earth once every 27 days. Its surface is covered "
        "in craters made by impacts.\n", encoding="utf-8")
    rag.build(config=cfg)
    return cfg


@contextlib.contextmanager
def server_process(argv: list[str], env: dict[str, str], port: int, timeout: float = 120.0):
    """Run a server command (``argv``, e.g. ``uvicorn --factory ...``) as a user would, in
    its own process, until its port answers; stopped (and reaped) on exit. Yields the
    loopback base URL. Raises with the server's output when it exits before answering."""
    import time

    import httpx

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                **env}
    proc = subprocess.Popen([sys.executable, *argv], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}): "
                                   f"{proc.stdout.read()[-2000:]}")
            try:
                httpx.get(url + "/api/health", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer") from None
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture
def server_proc():
    return server_process
