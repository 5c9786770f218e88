"""Replicas: several server processes on one index folder, no sharding (issue 14, item 1).

Two real ``rag-serve`` processes (the console script's entry point, in subprocesses, each
on its own port on 127.0.0.1) serve one index folder that this process rebuilds. Each
replica must switch to a newly published version at its next question, on its own and
without a restart (``rag.index.live.load_index`` re-reads ``CURRENT``); the previous
version is kept one more build for readers still on it, and the one before is removed.
A second test runs ``uvicorn --factory rag.app.web:create_app --workers 2``.

Which version a process has *loaded* is read from ``/proc/<pid>/maps`` (the index files
are memory-mapped; Linux only): ``/api/health`` reports the published version (it reads
``CURRENT``), not the loaded one. Real bundled model, three short articles written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import rag
from rag.app.web import free_port
from rag.config import Config
from rag.index.store import current_version

pytestmark = pytest.mark.model  # the replicas embed with the real model

# what the `rag-serve` console script runs (pyproject: rag-serve = "rag.app.web:main");
# `python -m rag.app.web` has no __main__ block and would exit at once
SERVE = "import sys; from rag.app.web import main; sys.exit(main())"
POLL_S = 60.0  # generous limits against hangs; nothing here asserts a speed

LIGHTHOUSE = ("Harbour lighthouse restored\n\nThe old harbour lighthouse in Port Evan was "
              "restored last year. Volunteers painted the tower white and red, and the lamp "
              "now shines twelve miles out to sea.\n")
BAKERY = ("Village bakery wins prize\n\nThe bakery on Mill Street won the regional bread "
          "prize for its rye loaf. The baker, Ida Moss, has run the shop for twenty years.\n")
FERRY = ("New ferry for Port Evan\n\nA new ferry between Port Evan and Gull Island starts "
         "sailing in May. The ferry, named Kestrel, carries three hundred passengers and "
         "forty cars on each crossing.\n")
OBSERVATORY = ("Observatory opens on Crow Hill\n\nA public observatory opened on Crow Hill "
               "this week. Its telescope mirror is eighty centimetres wide, and the "
               "observatory is open to visitors every Friday night.\n")

Q_BAKERY = ("Who runs the bakery on Mill Street?", "bakery.txt", "Ida Moss")
Q_FERRY = ("How many passengers does the new ferry carry?", "ferry.txt", "three hundred")
Q_OBSERVATORY = ("How wide is the telescope mirror at the observatory?", "observatory.txt",
                 "eighty centimetres")


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without RAG_* / GRADIO_* settings (no token, our folders only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GRADIO_"))}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1",
               RAG_RATE_LIMIT="0", **extra)
    return env


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode("utf-8") if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _ask(url: str, question: str) -> dict:
    status, answer = _http(url + "/api/ask", {"question": question})
    assert status == 200, (url, question, answer)
    return answer


def _answers(answer: dict, article: str, fact: str) -> bool:
    return (not answer["abstained"] and answer["article_id"] == article
            and fact in answer["text"])


def _essence(answer: dict) -> tuple:
    """What two replicas on one version must agree on (not the timings)."""
    return (answer["text"], answer["abstained"], answer["score"], answer["article_id"],
            answer["start"], answer["end"],
            [(c["article_id"], c["start"], c["end"], c["score"]) for c in answer["citations"]])


def _loaded(pid: int, index_dir: Path, version: str) -> bool | None:
    """Whether process ``pid`` has ``version`` loaded: every segment it lists is
    memory-mapped (segments are shared between versions, so a version's own new segment
    is what tells it apart); None where /proc is not available."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    root = str((index_dir / "segments").resolve()) + os.sep
    mapped = {line[line.index(root) + len(root):].split(os.sep)[0]
              for line in maps.splitlines() if root in line}
    listed = json.loads((index_dir / version / "manifest.json").read_text())["segments"]
    return {e["name"] for e in listed} <= mapped


def _until(what: str, check, deadline: float):
    """Poll ``check()`` until it returns something truthy; fail with ``what`` after
    ``deadline`` (time.monotonic)."""
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"{what} (gave up after the deadline; last: {last!r})")


class Server:
    """One server process, its port, its log; ``stop()`` ends this process only."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=log.parent)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_healthy(self, deadline: float) -> dict:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server on port {self.port} exited ({self.proc.returncode}):\n"
                            f"{self.tail()}")
            try:
                status, health = _http(self.url + "/api/health")
                if status == 200 and health.get("status") == "ok":
                    return health
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        pytest.fail(f"server on port {self.port} never became healthy:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def library(tmp_path: Path) -> Config:
    """Two short articles, built once with the real bundled model (the servers' defaults)."""
    src = tmp_path / "articles"
    src.mkdir()
    (src / "lighthouse.txt").write_text(LIGHTHOUSE, encoding="utf-8")
    (src / "bakery.txt").write_text(BAKERY, encoding="utf-8")
    cfg = Config(source=src, index_dir=tmp_path / "index")
    report = rag.build(config=cfg)
    assert report.wrote and report.articles == 2
    return cfg


@pytest.fixture
def replicas(library: Config, tmp_path: Path):
    """Two `rag-serve --no-build` processes on the same index folder, both healthy."""
    servers: list[Server] = []
    try:
        for n in range(2):
            port = free_port()
            servers.append(Server(
                [sys.executable, "-c", SERVE, "--index", str(library.index_dir),
                 "--source", str(library.source), "--host", "127.0.0.1",
                 "--port", str(port), "--no-build"],
                _clean_env(), tmp_path / f"replica-{n}.log", port))
        deadline = time.monotonic() + POLL_S
        for s in servers:
            s.wait_healthy(deadline)
        yield servers
    finally:
        for s in servers:
            s.stop()


def _add_and_build(cfg: Config, name: str, text: str) -> str:
    (Path(cfg.source) / name).write_text(text, encoding="utf-8")
    report = rag.build(config=cfg)
    assert report.wrote and report.added == (name,), report
    assert current_version(cfg.index_dir) == report.version
    return report.version


def _versions_on_disk(index_dir: Path) -> set[str]:
    return {p.name for p in Path(index_dir).glob("v*") if p.is_dir()}


def _switched(server: Server, question: tuple[str, str, str], deadline: float) -> dict:
    """Ask ``server`` until it answers ``question`` from its article (the new version)."""
    q, article, fact = question
    last: dict = {}

    def check() -> dict | None:
        last.update(_ask(server.url, q))
        return dict(last) if _answers(last, article, fact) else None

    while time.monotonic() < deadline:
        if answer := check():
            return answer
        time.sleep(0.2)
    pytest.fail(f"{server.url} does not answer {q!r} from {article} (still on the old "
                f"version?); last answer: {last.get('article_id')!r} {last.get('text')!r}")


def test_replicas_switch_to_a_new_version_on_their_own(library, replicas):
    a, b = replicas
    index_dir = Path(library.index_dir)
    v1 = current_version(index_dir)

    # one published version: both report it, answer alike, and load it
    for s in replicas:
        assert s.wait_healthy(time.monotonic() + POLL_S)["index"] == v1
    answers = [_ask(s.url, Q_BAKERY[0]) for s in replicas]
    assert all(_answers(x, *Q_BAKERY[1:]) for x in answers), answers
    assert _essence(answers[0]) == _essence(answers[1])
    for s in replicas:  # the new fact is not there yet (so the checks below can fail)
        assert not _answers(_ask(s.url, Q_FERRY[0]), *Q_FERRY[1:])
        assert _loaded(s.proc.pid, index_dir, v1) in (True, None)

    # a rebuild while replica a answers questions: none of them fails
    results: list[tuple[int, dict]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                results.append(_http(a.url + "/api/ask", {"question": Q_BAKERY[0]}))
            except (OSError, ValueError) as exc:  # refused, reset, not JSON: a failure
                results.append((0, {"error": repr(exc)}))

    asker = threading.Thread(target=keep_asking, daemon=True)
    asker.start()
    try:
        v2 = _add_and_build(library, "ferry.txt", FERRY)
        time.sleep(0.5)  # a few more questions on the new version
    finally:
        stop.set()
        asker.join(timeout=60)
    assert results and all(st == 200 and _answers(x, *Q_BAKERY[1:]) for st, x in results), \
        [x for st, x in results if st != 200 or not _answers(x, *Q_BAKERY[1:])][:3]

    # v2 is published, v1 is kept; replica b, asked nothing since, still has v1 loaded
    # (it switches at its next question) and v1's files are all still there
    assert v2 != v1 and _versions_on_disk(index_dir) == {v1, v2}
    assert (index_dir / v1 / "manifest.json").is_file()
    assert _loaded(b.proc.pid, index_dir, v1) in (True, None)
    assert _loaded(b.proc.pid, index_dir, v2) in (False, None)

    # both answer the new fact from v2, without a restart, and agree
    deadline = time.monotonic() + POLL_S
    new = [_switched(s, Q_FERRY, deadline) for s in replicas]
    assert _essence(new[0]) == _essence(new[1])
    for s in replicas:
        assert _loaded(s.proc.pid, index_dir, v2) in (True, None)
        assert _http(s.url + "/api/health")[1]["index"] == v2
        assert s.proc.poll() is None  # the same processes, never restarted

    # a second build removes v1 (two kept: v2 and v3); both still answer, from v3
    v3 = _add_and_build(library, "observatory.txt", OBSERVATORY)
    assert _versions_on_disk(index_dir) == {v2, v3}
    deadline = time.monotonic() + POLL_S
    newest = [_switched(s, Q_OBSERVATORY, deadline) for s in replicas]
    assert _essence(newest[0]) == _essence(newest[1])
    for s in replicas:
        assert _answers(_ask(s.url, Q_FERRY[0]), *Q_FERRY[1:])
        assert _answers(_ask(s.url, Q_BAKERY[0]), *Q_BAKERY[1:])
        assert _loaded(s.proc.pid, index_dir, v3) in (True, None)
        assert s.proc.poll() is None


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")
def test_uvicorn_workers_switch_on_their_own(library, tmp_path):
    """`uvicorn --factory rag.app.web:create_app --workers 2` (settings from RAG_*): every
    worker loads the index and moves to a new version at its next question."""
    index_dir = Path(library.index_dir)
    port = free_port()
    server = Server([sys.executable, "-m", "uvicorn", "--factory", "rag.app.web:create_app",
                     "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
                     "--log-level", "warning"],
                    _clean_env(RAG_INDEX=str(index_dir), RAG_SOURCE=str(library.source)),
                    tmp_path / "workers.log", port)
    try:
        deadline = time.monotonic() + POLL_S
        server.wait_healthy(deadline)
        v1 = current_version(index_dir)

        def workers_on(version: str) -> list[int] | None:
            """Ask once; the worker processes once two have ``version`` loaded."""
            _switched(server, (Q_FERRY if version != v1 else Q_BAKERY), deadline)
            on = [p for p in _children(server.proc.pid)
                  if _loaded(p, index_dir, version)]
            return on if len(on) == 2 else None

        _until("two uvicorn workers with the index loaded", lambda: workers_on(v1), deadline)
        v2 = _add_and_build(library, "ferry.txt", FERRY)
        deadline = time.monotonic() + POLL_S
        for _ in range(5):  # whichever worker takes it, it answers from v2 at once
            assert _answers(_ask(server.url, Q_FERRY[0]), *Q_FERRY[1:])
        _until("both uvicorn workers on the new version", lambda: workers_on(v2), deadline)
    finally:
        server.stop()
