"""On a real local Ray cluster (the `distributed` extra; skipped cleanly without Ray): a
Ray-built index equals the local build file for file (one index and shards); a sharded
index behind Ray Serve answers exactly as one index does, in the three retrieval modes,
through the same HTTP API; every Serve replica serves; a newly published version is
picked up without a redeploy; the embedding pool stays below the CPU count."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.model]
ray = pytest.importorskip("ray", reason="the distributed extra (ray) is not installed")
serve = pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")

import rag  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.distributed.build import RayEmbed  # noqa: E402
from rag.distributed.serve import APP_NAME, build_app  # noqa: E402
from rag.index.shards import shard_name  # noqa: E402
from tests.conftest import DATA, SEEDS  # noqa: E402

MODES = ("hybrid", "dense", "keyword")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPUs (this machine kind), shut down after the module."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             log_to_driver=False)
    yield
    try:
        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def articles(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("ray") / "articles"
    src.mkdir()
    shutil.copy(DATA / "wiki_sample.jsonl", src / "wiki.jsonl")
    shutil.copytree(SEEDS, src / "seeds")
    return src


def files_of(index_dir: Path) -> dict:
    version = (index_dir / "CURRENT").read_text().strip()
    return json.loads((index_dir / version / "manifest.json").read_text())["files"]


def comparable(d: dict) -> dict:
    d = json.loads(json.dumps(d, ensure_ascii=False))
    d.pop("timings_ms", None)
    return d


def test_a_ray_build_equals_the_local_build_file_for_file(cluster, articles, tmp_path):
    local = Config(source=articles, index_dir=tmp_path / "local")
    rag.build(config=local)
    engine = RayEmbed()
    report = rag.build(config=local.replace(index_dir=tmp_path / "ray"), embed=engine)
    assert report.wrote and report.articles == 15
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")  # sha256 of every file
    # the actor pool stayed below the cluster's CPU count (ray-project/ray#44687)
    assert engine.report["actors"] < engine.report["cpus"] == 2

    rag.build(config=local.replace(index_dir=tmp_path / "shards-local"), shards=3)
    rag.build(config=local.replace(index_dir=tmp_path / "shards-ray"), shards=3,
              engine="ray")
    for i in range(3):
        assert files_of(tmp_path / "shards-ray" / shard_name(i)) == \
            files_of(tmp_path / "shards-local" / shard_name(i))


@pytest.fixture(scope="module")
def served(cluster, articles, tmp_path_factory):
    """The single index, and a 2-shard index behind Ray Serve (2 replicas of every
    deployment) on a free loopback port."""
    from rag.app.web import free_port

    base = tmp_path_factory.mktemp("serve")
    single = Config(source=articles, index_dir=base / "single")
    sharded = single.replace(index_dir=base / "sharded")
    rag.build(config=single)
    rag.build(config=sharded, shards=2)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(config=sharded, replicas=2, shard_replicas=2, ui=False),
              name=APP_NAME, route_prefix="/")
    yield single, sharded, f"http://127.0.0.1:{port}"
    serve.delete(APP_NAME)


def test_sharded_answers_through_ray_serve_equal_the_single_index(served):
    single, _, url = served
    qs = [json.loads(line)["question"] for line in open(DATA / "wiki_sample_questions.jsonl")]
    qs += [json.loads(line)["question"] for line in open(DATA / "seed_questions.jsonl")]
    differ = []
    with httpx.Client(timeout=120) as client:
        for mode in MODES:
            for q in qs[::3]:
                got = client.post(f"{url}/api/ask", json={"question": q, "retrieval": mode})
                assert got.status_code == 200, got.text
                want = rag.ask(q, config=single, retrieval=mode).to_dict()
                if comparable(got.json()) != comparable(want):
                    differ.append((mode, q))
        assert differ == []
        got = client.post(f"{url}/api/ask", json={"question": "Who founded DeepSeek?",
                                                  "filters": {"folders": ["seeds"]}}).json()
        assert got["citations"] and got["citations"][0]["article_id"].startswith("seeds/")
        health = client.get(f"{url}/api/health").json()
        assert health["status"] == "ok" and health["index"].startswith("cluster-")
        bad = client.post(f"{url}/api/ask", json={"question": "", "k": 0})
        assert bad.status_code == 400 and set(bad.json()) == {"error", "code"}


def test_every_serve_replica_serves(served):
    status = serve.status().applications[APP_NAME]
    running = {name: d.replica_states.get("RUNNING", 0) for name, d in
               status.deployments.items()}
    assert running == {"coordinator": 2, shard_name(0): 2, shard_name(1): 2}
    handle = serve.get_deployment_handle(shard_name(0), app_name=APP_NAME)
    pids = set()
    for _ in range(10):
        pids |= {r.result() for r in [handle.pid.remote() for _ in range(8)]}
        if len(pids) == 2:
            break
    assert len(pids) == 2


def test_a_new_published_version_is_served_without_a_redeploy(served, articles):
    single, sharded, url = served
    note = articles / "late-news.txt"
    note.write_text("Harbour tunnel opens\n\nThe harbour tunnel of Port Elsworth opened "
                    "on Tuesday after nine years of work, at a cost of 812 million dollars.",
                    encoding="utf-8")
    try:
        rag.build(config=sharded)
        rag.build(config=single)
        q = "How much did the harbour tunnel of Port Elsworth cost?"
        with httpx.Client(timeout=120) as client:
            for _ in range(60):  # each coordinator replica switches at its next question
                got = client.post(f"{url}/api/ask", json={"question": q}).json()
                if got["citations"] and got["citations"][0]["article_id"] == "late-news.txt":
                    break
                time.sleep(0.5)
            assert "812 million" in got["citations"][0]["quote"]
            assert comparable(got) == comparable(rag.ask(q, config=single).to_dict())
    finally:
        note.unlink()


def test_the_serve_command_serves_a_sharded_folder(articles, tmp_path):
    """rag-serve-ray as a user runs it: its own Ray, a free loopback port, the API."""
    from rag.app.web import free_port

    index = tmp_path / "index"
    rag.build(config=Config(source=articles, index_dir=index), shards=2)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "RAY_"))}
    env.update(HF_HUB_OFFLINE="1", RAG_RATE_LIMIT="0")
    proc = subprocess.Popen([sys.executable, "-m", "rag.distributed.serve", "--index",
                             str(index), "--port", str(port), "--no-ui"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # up to ~2 minutes to start Ray and Serve
            if proc.poll() is not None:
                pytest.fail(f"rag-serve-ray exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        else:
            pytest.fail("rag-serve-ray did not become healthy")
        got = httpx.post(f"{url}/api/ask", json={"question": "Who founded DeepSeek?"},
                         timeout=120)
        assert got.status_code == 200 and got.json()["citations"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_serve_command_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "RAY_"))}
    done = subprocess.run([sys.executable, "-m", "rag.distributed.serve", "--index",
                           str(tmp_path), "--host", "0.0.0.0"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "RAG_API_TOKEN" in done.stderr
