"""Faults: the previous index keeps working.

* ``python -m rag.build`` killed with SIGKILL at many different moments (each step of
  loading, embedding, writing the new segment, fsync, publishing the version and cleaning
  up, plus random times): afterwards the index loads and answers exactly as before (or
  exactly as the new version, once ``CURRENT`` has been replaced) and the next build
  completes and leaves no segment that no kept version lists.
* Truncated, corrupted, missing or foreign index files (in a segment or in the version):
  a clear error naming the problem and saying to rebuild, and the build repairs it (a
  damaged segment file needs ``--rebuild``, as the error says: a build reads only the
  manifests, so it sees nothing changed).
* Two builds at once: the second waits (or stops with a clear message); never two writers.
* ``ask`` while builds replace the index: every answer wholly from one version.
* Disk full (an injected ``OSError(ENOSPC)``) at each write: the old index survives.

The builds run in child processes forked from a "zygote" (a Python process that has already
imported rag, numpy, faiss and the keyword index's stemmer and stop words and registered the
fake embedder), so each child is exactly ``python -m rag.build`` (run with :mod:`runpy`)
without 2 s of imports each time.
The zygote wraps the build's file operations so that every step reports an event on
stdout; a child can be told to halt at event ``n`` (it then waits, and the test kills it).
"""

from __future__ import annotations

import errno
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.answer.pipeline import forget_corpus
from rag.index import live, store
from rag.config import Config
from rag.index.segments import open_version
from rag.index.store import FILES, current_version, read_manifest, read_segment
from rag.types import BuildError, IndexMismatch, IndexMissing
from tests.conftest import TESTS  # children import it as conftest (the fake embedder)

# -- the zygote -----------------------------------------------------------------------

ZYGOTE = r'''
import json, os, runpy, select, shutil, sys, time
sys.path.insert(0, sys.argv[1])
import conftest  # registers the fake embedder as model "fake"
import numpy, faiss, bm25s, filelock, tqdm, blingfire, Stemmer
import rag, rag.build, rag.index.build, rag.index.store, rag.index.segments
import rag.index.keyword, rag.answer.search, rag.ingest.chunking, rag.ingest.loaders

STATE = {"n": 0, "halt": None, "go": None, "sleep": 0.0, "seen": {}, "zygote": os.getpid(),
         "fd": 1}

def say(line):
    os.write(STATE["fd"], ("@@ " + line + "\n").encode())

def event(name):
    n = STATE["n"]
    STATE["n"] += 1
    k = STATE["seen"][name] = STATE["seen"].get(name, 0) + 1
    say(f"EV {os.getpid()} {n} {name}#{k}")
    if f"{name}#{k}" == STATE["halt"]:
        say(f"HALT {os.getpid()} {n} {name}#{k}")
        while not (STATE["go"] and os.path.exists(STATE["go"])):
            if os.getppid() != STATE["zygote"]:  # the test and its zygote are gone
                os._exit(3)
            time.sleep(0.005)
    if STATE["sleep"]:
        time.sleep(STATE["sleep"])

def hook(owner, attr, label=None):
    real = getattr(owner, attr)
    label = label or attr
    def wrapper(*args, **kwargs):
        event(label + ">")
        out = real(*args, **kwargs)
        event(label + "<")
        return out
    setattr(owner, attr, wrapper)

import rag.index.build as ix, rag.index.store as st, rag.index.segments as sg
import rag.index.keyword as kw
hook(ix, "load_sources", "load_articles")
hook(ix._build_lock, "__enter__", "lock")
hook(ix, "embed_articles", "_embed_articles")
hook(ix, "_assemble")
# a new segment (the build's, or a merge's), then a version that lists it
for owner in (ix, sg):
    hook(owner, "write_data_segment")
    hook(owner, "publish_version")
hook(ix, "merge")
hook(sg, "write_segment")
real_keyword_writer = kw.build_keyword_writer
def keyword_writer(texts, analyzers=None):  # indexing the passages, then writing the postings (terms/)
    event("keyword_index>")
    write = real_keyword_writer(texts, analyzers)
    event("keyword_index<")
    def write_terms(folder):
        event("write_terms>")
        write(folder)
        event("write_terms<")
    return write_terms
kw.build_keyword_writer = keyword_writer
hook(st, "_write_articles")
hook(st, "_write_json")
hook(st, "_fsync_tree")
hook(st, "_fsync_dir")
hook(st, "collect_garbage")
hook(numpy, "save", "np.save")
hook(faiss, "write_index", "faiss.write_index")
hook(os, "fsync")
hook(os, "rename")
hook(os, "replace")
hook(shutil, "rmtree")
fake = conftest.FakeEmbedder
real_passages = fake.embed_passages
def embed_in_batches(self, texts, spans, progress=None):
    vecs, svecs = [], []
    for i in range(0, len(texts), 2):
        event("embed-batch")
        v, s = real_passages(self, texts[i:i + 2], spans[i:i + 2])
        vecs.append(v)
        svecs.extend(s)
    return numpy.concatenate(vecs), svecs
fake.embed_passages = embed_in_batches

def child(cmd):
    STATE.update(halt=cmd.get("halt"), go=cmd.get("go"), sleep=cmd.get("sleep", 0.0))
    err = os.open(cmd["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    STATE["fd"] = os.dup(1)  # events only; the build's own output goes to the file
    os.dup2(err, 1)
    os.dup2(err, 2)
    os.environ.update(cmd.get("env", {}))
    sys.argv = ["rag.build", *cmd["argv"]]
    code = 0
    try:
        runpy.run_module("rag.build", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 99
    sys.stderr.flush()
    os._exit(code)

say("READY")
buf = b""
running = set()
while True:
    ready, _, _ = select.select([0], [], [], 0.01)
    for pid in list(running):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            running.discard(pid)
            say(f"EXIT {pid} {status}")
    if not ready:
        continue
    data = os.read(0, 65536)
    if not data:  # the test is done: no child outlives it
        for pid in running:
            os.kill(pid, 9)
        break
    buf += data
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        cmd = json.loads(line)
        if "kill" in cmd:  # only a child not yet reaped: its pid cannot have been reused
            if cmd["kill"] in running:
                os.kill(cmd["kill"], 9)
            continue
        pid = os.fork()
        if pid == 0:
            child(cmd)
        running.add(pid)
        say(f"PID {cmd['tag']} {pid}")
'''

BUILD_ENV = {"RAG_MODEL": "fake", "RAG_CHUNK_TOKENS": "40", "RAG_CHUNK_OVERLAP": "5",
             "RAG_ABSTAIN_THRESHOLD": "0", "HF_HUB_OFFLINE": "1"}


class Child:
    def __init__(self, zygote: "Zygote", tag: str, pid: int, stderr: Path) -> None:
        self.zygote, self.tag, self.pid, self.stderr_path = zygote, tag, pid, stderr
        self.events: list[tuple[int, str]] = []
        self.halted: str | None = None
        self.status: int | None = None

    @property
    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:  # the child has not opened it yet
            return ""

    def wait_halt(self) -> str:
        while self.halted is None and self.status is None:
            self.zygote.pump()
        return self.halted

    def wait(self) -> int:
        while self.status is None:
            self.zygote.pump()
        return self.status

    def kill(self) -> None:
        """SIGKILL, sent by the zygote (its parent) and only if it has not reaped it yet,
        so a recycled pid can never be hit."""
        self.zygote.send({"kill": self.pid})

    @property
    def killed(self) -> bool:
        return os.WIFSIGNALED(self.status) and os.WTERMSIG(self.status) == signal.SIGKILL

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None


class Zygote:
    """A pre-imported Python that forks ``python -m rag.build`` children on request."""

    def __init__(self, workdir: Path) -> None:
        script = workdir / "zygote.py"
        script.write_text(ZYGOTE)
        self.workdir = workdir
        self.proc = subprocess.Popen([sys.executable, str(script), str(TESTS)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(workdir / "zygote.err", "wb"),
                                     env={**os.environ, **BUILD_ENV}, cwd=workdir)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.children: dict[int, Child] = {}
        self.pending: dict[str, Child] = {}
        self.early: dict[int, list[str]] = {}
        self._n = 0
        first = self.lines.get(timeout=300)
        assert first == "@@ READY", (first, (workdir / "zygote.err").read_text())

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def pump(self, block: bool = True) -> None:
        try:
            line = self.lines.get(timeout=300) if block else self.lines.get_nowait()
        except queue.Empty:
            if block:
                raise AssertionError("the zygote said nothing for 300 s") from None
            return
        while line is not None:
            self._handle(line)
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
        raise AssertionError("zygote died: " + (self.workdir / "zygote.err").read_text())

    def _handle(self, line: str) -> None:
        if not line.startswith("@@ "):
            return  # not the protocol (nothing else should write here)
        kind, rest = line[3:].split(" ", 1)
        if kind == "PID":
            tag, pid = rest.split()
            child = self.pending.pop(tag)
            child.pid = int(pid)
            self.children[child.pid] = child
            for early in self.early.pop(child.pid, []):  # lines the child wrote first
                self._handle(early)
            return
        pid, rest = rest.split(" ", 1)
        child = self.children.get(int(pid))
        if child is None:
            self.early.setdefault(int(pid), []).append(line)
            return
        if kind == "EV":
            n, name = rest.split(" ", 1)
            child.events.append((int(n), name))
        elif kind == "HALT":
            child.halted = rest.split(" ", 1)[1]
        elif kind == "EXIT":
            child.status = int(rest)

    def start(self, cfg: Config, *args: str, halt: str | None = None, sleep: float = 0.0,
              env: dict | None = None, quiet: bool = True) -> Child:
        self._n += 1
        tag = f"c{self._n}"
        child = Child(self, tag, -1, self.workdir / f"{tag}.err")
        self.pending[tag] = child
        cmd = {"tag": tag, "argv": ["--source", str(cfg.source), "--index", str(cfg.index_dir),
                                    *(["--quiet"] if quiet else []), *args],
               "halt": halt, "go": str(self.workdir / f"{tag}.go"), "sleep": sleep,
               "stderr": str(child.stderr_path), "env": env or {}}
        self.send(cmd)
        while child.pid == -1:
            self.pump()
        return child

    def resume(self, child: Child) -> None:
        (self.workdir / f"{child.tag}.go").touch()

    def run(self, cfg: Config, *args: str, **kw) -> Child:
        child = self.start(cfg, *args, **kw)
        child.wait()
        return child

    def send(self, cmd: dict) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.stdin.close()  # the zygote kills any child still running, then exits
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


# -- two states of a small corpus -------------------------------------------------------

STATE_A = {
    "solar.txt": "Solar power in Spain\n\nSpain installed record solar capacity in 2023. "
                 "The grid operator said panels now supply a fifth of demand.",
    "chess.md": "# Chess world championship\n\nThe match in Singapore ended after fourteen "
                "games. Gukesh won the final game against Ding Liren.",
    "volcano.txt": "Volcano erupts in Iceland\n\nLava reached the town of Grindavik on Sunday."
                   " Residents had been evacuated weeks before.",
    "feed.jsonl": json.dumps({"id": "rail", "title": "Rail strike", "text": "Train drivers "
                              "in Germany went on strike for three days in March."}) + "\n",
}
# B: an article added in front (every row number shifts), one changed, one removed
STATE_B = {
    "0-rocket.txt": "Rocket launch\n\nThe rocket reached orbit at 9 am after two delays. "
                    "Engineers had replaced a faulty valve the night before.",
    "solar.txt": STATE_A["solar.txt"] + "\n\nBatteries now store the midday surplus.",
    "chess.md": STATE_A["chess.md"],
    "feed.jsonl": STATE_A["feed.jsonl"],
}
QUESTIONS = ["When did the rocket reach orbit?", "How much of demand do panels supply?",
             "Who won the final game in Singapore?", "When did lava reach Grindavik?",
             "How long did the train drivers strike?"]


def set_source(cfg: Config, state: dict[str, str]) -> None:
    for p in list(cfg.source.iterdir()):
        if p.name not in state:
            p.unlink()
    for name, text in state.items():
        p = cfg.source / name
        if not p.exists() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")


def answers(cfg: Config) -> list:
    """The answers of the live index, loaded afresh from disk (version and segments)."""
    forget_corpus(cfg.index_dir)
    return [rag.ask(q, config=cfg) for q in QUESTIONS]


def segment_path(index_dir: Path, article: str | None = None) -> Path:
    """The folder of the live version's segment that holds ``article`` (None: of its one
    segment, as after a fresh build): where the index files are."""
    _, manifest = read_manifest(index_dir, verify=False)
    names = [e["name"] for e in manifest["segments"]]
    if article is not None:
        names = [n for n in names
                 if article in read_segment(index_dir, n, verify=False)[1]["articles"]]
    [name] = names
    return Path(index_dir) / "segments" / name


def listed_segments(index_dir: Path) -> set[str]:
    """The segments some version on disk lists."""
    out = set()
    for v in Path(index_dir).glob("v*"):
        out |= {e["name"] for e in json.loads((v / "manifest.json").read_text())["segments"]}
    return out


def assert_no_leftovers(index_dir: Path) -> None:
    """No unfinished version or segment, at most two versions, and every segment on disk
    listed by one of them."""
    names = sorted(p.name for p in Path(index_dir).iterdir())
    segments = sorted(p.name for p in (Path(index_dir) / "segments").iterdir())
    assert not [n for n in names + segments if n.startswith(".tmp-")], (names, segments)
    assert len([n for n in names if n.startswith("v")]) <= 2, names
    assert set(segments) == listed_segments(index_dir), segments


@pytest.fixture
def two_states(cfg, fake_embedder):
    """(cfg, answers in state A, answers in state B); the index is live in state A."""
    set_source(cfg, STATE_B)
    rag.build(config=cfg)
    ans_b = answers(cfg)
    set_source(cfg, STATE_A)
    rag.build(config=cfg)
    ans_a = answers(cfg)
    assert ans_a != ans_b and all(x != y for x, y in zip(ans_a[:1], ans_b[:1]))
    return cfg, ans_a, ans_b


def live_state(cfg, ans_a, ans_b) -> str:
    """'A' or 'B': the index loads, passes its checks and answers exactly like one state."""
    forget_corpus(cfg.index_dir)
    read_manifest(cfg.index_dir)  # the version's files pass their checks
    open_version(cfg.index_dir)  # and so does every segment's (loaded afresh)
    got = answers(cfg)
    assert got in (ans_a, ans_b), "answers are neither the old nor the new index's"
    return "A" if got == ans_a else "B"


# -- SIGKILL at many moments --------------------------------------------------------------

def test_sigkill_at_every_step_of_a_build_leaves_a_working_index(two_states, zygote):
    cfg, ans_a, ans_b = two_states
    # an uninterrupted A -> B build in a child: the list of its steps
    set_source(cfg, STATE_B)
    full = zygote.run(cfg)
    assert full.exit_code == 0, full.stderr
    steps = [name for _, name in full.events]  # "label#occurrence"
    publish = steps.index("replace<#1")  # CURRENT replaced: the new version is live after it
    # the build writes one new segment (its files, its manifest, fsync, renamed into
    # segments/), then the version that lists it, then replaces CURRENT
    segment = steps.index("write_segment>#1")
    assert segment < steps.index("_write_articles>#1") < steps.index("np.save>#1") \
        < steps.index("faiss.write_index>#1") < steps.index("write_terms>#1") \
        < steps.index("rename>#1") < steps.index("write_segment<#1") \
        < steps.index("publish_version>#1") < steps.index("rename>#2") < publish, steps
    assert live_state(cfg, ans_a, ans_b) == "B"
    kills = []  # (step name, state before, state after)

    def back_to_a():
        if live_state(cfg, ans_a, ans_b) == "B":
            set_source(cfg, STATE_A)
            child = zygote.run(cfg)
            assert child.exit_code == 0, child.stderr  # the next build completes
        assert live_state(cfg, ans_a, ans_b) == "A"

    # 1. halt at the start and at the end of each kind of step of the A -> B build (the
    #    child waits there) and SIGKILL it; every step of writing the new segment and
    #    publishing the version, but for the single os.fsync calls inside _fsync_tree,
    #    _fsync_dir and _write_json, which change nothing on disk that a SIGKILL could
    #    tell (the first of them is chosen all the same; the number of folders garbage
    #    collection removes varies: rmtree is left out)
    labels = [s.split("#")[0] for s in steps]
    chosen = sorted({labels.index(x) for x in labels if x != "rmtree>" and x != "rmtree<"}
                    | {n for n in range(segment, publish + 1)
                       if labels[n] not in ("fsync>", "fsync<")})
    for n in chosen:
        back_to_a()
        set_source(cfg, STATE_B)
        child = zygote.start(cfg, halt=steps[n])
        where = child.wait_halt()
        assert where == steps[n], f"the build finished before step {steps[n]}"
        child.kill()
        child.wait()
        assert child.killed
        after = live_state(cfg, ans_a, ans_b)
        # atomic publish: old answers until CURRENT is replaced, new ones after
        assert after == ("B" if n >= publish else "A"), (n, where)
        kills.append((where.split("#")[0], "A", after))

    # 2. SIGKILL at random times, both directions, with a small pause at every step so
    #    the kills land inside writes too
    rng = random.Random(5)
    span = max(0.05, len(steps) * 0.004)
    for i in range(12):
        before = live_state(cfg, ans_a, ans_b)
        set_source(cfg, STATE_B if before == "A" else STATE_A)
        child = zygote.start(cfg, sleep=0.004)
        time.sleep(rng.uniform(0, span))
        child.kill()
        child.wait()
        after = live_state(cfg, ans_a, ans_b)
        if child.killed:
            last = child.events[-1][1].split("#")[0] if child.events else "start"
            kills.append((f"t+{i}:{last}", before, after))
        else:
            assert child.exit_code == 0, child.stderr
    assert len(kills) >= 20
    assert {"rename>", "replace>", "replace<", "np.save>", "fsync>", "collect_garbage>",
            "embed-batch", "lock<", "write_segment>", "_write_articles>", "faiss.write_index>",
            "write_terms>", "write_terms<", "publish_version>", "write_segment<"
            } <= {w for w, _, _ in kills}

    # the next build completes, cleans up what the killed builds left, and is right
    set_source(cfg, STATE_B)
    final = zygote.run(cfg)
    assert final.exit_code == 0, final.stderr
    assert live_state(cfg, ans_a, ans_b) == "B"
    assert_no_leftovers(cfg.index_dir)  # nor a segment a killed build wrote but never listed
    print(f"\n{len(kills)} SIGKILLs survived ({len(chosen)} chosen of {len(steps)} build "
          f"steps, segment from step {segment}, publish at step {publish}; "
          f"{len(kills) - len(chosen)} at random times)")


# -- damaged index files ---------------------------------------------------------------

def damage_and_expect(cfg, name: str, how: str, pattern: str) -> None:
    """Damage ``name`` in the segment that holds the article asked about."""
    f = segment_path(cfg.index_dir, "chess.md") / name
    if how == "truncate":
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    elif how == "flip":  # same size, other bytes
        data = bytearray(f.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 16):
            data[i] ^= 0xFF
        f.write_bytes(bytes(data))
    elif how == "delete":
        f.unlink()
    forget_corpus(cfg.index_dir)
    with pytest.raises(IndexMismatch, match=pattern) as info:
        rag.ask("Who won the final game in Singapore?", config=cfg)
    assert "python -m rag.build --rebuild" in str(info.value)


INDEX_FILES = [*FILES, "terms/vocab.json", "terms/indptr.npy", "terms/docs.npy",
               "terms/tf.npy", "terms/lengths.npy"]


@pytest.mark.parametrize("how, pattern", [
    ("truncate", r"index file {name} has \d+ bytes, the manifest says \d+"),
    ("flip", r"index file {name} .*does not match the checksum"),
    ("delete", r"index file {name} is missing"),
])
@pytest.mark.parametrize("name", INDEX_FILES)
def test_damaged_index_file_is_named_and_a_rebuild_repairs_it(two_states, name, how,
                                                             pattern):
    cfg, ans_a, _ = two_states
    damage_and_expect(cfg, name, how, pattern.format(name=name.replace(".", r"\.")))
    # as the error says: --rebuild (a build reads only the manifests, not the segments'
    # files, so without it a build finds nothing changed)
    r = rag.build(config=cfg, rebuild=True)
    assert r.wrote and sorted(r.added) == sorted(["solar.txt", "chess.md", "volcano.txt",
                                                  "rail"])
    assert answers(cfg) == ans_a


def test_sigkill_during_a_merge_leaves_the_unmerged_version_answering(two_states, zygote):
    """`python -m rag.build --optimize` merges the segments into one and publishes like a
    build: killed at any step of it, the version before the merge answers, and the next
    merge completes and cleans up."""
    cfg, ans_a, ans_b = two_states
    set_source(cfg, STATE_B)
    built = zygote.run(cfg, env={"RAG_MERGE": "0"})  # A's segment plus B's: two
    assert built.exit_code == 0, built.stderr
    assert len(read_manifest(cfg.index_dir)[1]["segments"]) >= 2
    before = current_version(cfg.index_dir)
    dry = zygote.start(cfg, "--optimize", halt="replace>#1")  # the merge's steps, unpublished
    assert dry.wait_halt() == "replace>#1"
    dry.kill()
    dry.wait()
    steps = [name for _, name in dry.events]
    first = steps.index("write_segment>#1")
    chosen = [n for n in range(first, len(steps))
              if steps[n].split("#")[0] not in ("fsync>", "fsync<")]
    assert len(chosen) >= 10
    for n in chosen:
        child = zygote.start(cfg, "--optimize", halt=steps[n])
        assert child.wait_halt() == steps[n]
        child.kill()
        child.wait()
        assert child.killed
        assert live_state(cfg, ans_a, ans_b) == "B"  # the same answers, merged or not
        if current_version(cfg.index_dir) != before:  # killed after publishing: merged
            assert len(read_manifest(cfg.index_dir)[1]["segments"]) == 1
            break
    final = zygote.run(cfg, "--optimize")
    assert final.exit_code == 0, final.stderr
    assert len(read_manifest(cfg.index_dir)[1]["segments"]) == 1
    assert live_state(cfg, ans_a, ans_b) == "B"
    assert_no_leftovers(cfg.index_dir)


def test_damaged_deleted_rows_of_a_version_are_refused(two_states):
    """The version's own files (the rows deleted in an older segment) are checked too."""
    cfg, _, _ = two_states
    set_source(cfg, {k: v for k, v in STATE_A.items() if k != "volcano.txt"})
    rag.build(config=cfg.replace(merge=False))  # the volcano's segment keeps a deleted row
    path, manifest = read_manifest(cfg.index_dir)
    [name] = manifest["files"]
    assert name.startswith("deleted-") and (path / name).is_file()
    before = answers(cfg)
    assert "volcano.txt" not in {c.article_id for a in before for c in a.citations}
    (path / name).write_bytes((path / name).read_bytes()[:-4])
    forget_corpus(cfg.index_dir)
    with pytest.raises(IndexMismatch, match=f"index file {name} has .* bytes") as info:
        rag.ask(QUESTIONS[0], config=cfg)
    assert "python -m rag.build --rebuild" in str(info.value)
    assert rag.build(config=cfg, rebuild=True).wrote and answers(cfg) == before


# (which manifest, edit, what asking says, whether a plain build repairs it: a build
#  reads the manifests, so one it cannot use is rebuilt; one that reads fine but lists
#  the files wrongly is caught when asking, and --rebuild repairs it)
@pytest.mark.parametrize("which, edit, pattern, plain", [
    ("version", lambda m: {**m, "schema": 0},
     r"has schema 0 \(written whole by an older rag, before segments\); this version of "
     r"rag reads schema 3", True),
    ("version", lambda m: {**m, "schema": 2},
     r"has schema 2 \(written whole by an older rag, before segments\)", True),
    ("version", lambda m: {**m, "schema": 99}, r"has schema 99; this version", True),
    ("version", lambda m: [m], r"manifest .* is not an object", True),
    ("version", lambda m: {k: v for k, v in m.items() if k != "segments"},
     "does not list its segments", True),
    ("version", lambda m: {**m, "segments": [{"articles": 4}]},
     "does not list its segments", True),
    ("version", lambda m: {k: v for k, v in m.items() if k != "files"},
     "does not list every index file", False),
    ("version", lambda m: {**m, "model": "someone-else"}, "built with model 'someone-else'",
     True),
    ("version", lambda m: {**m, "settings": {**m["settings"], "chunk_tokens": 99}},
     "built with other settings .*chunk_tokens 99 -> 40", True),
    ("segment", lambda m: {k: v for k, v in m.items() if k != "files"},
     "does not list every index file", False),
    ("segment", lambda m: {**m, "files": {k: v for k, v in m["files"].items()
                                          if k != "chunks.npy"}},
     "does not list every index file", False),
    ("segment", lambda m: {**m, "schema": 2}, "is not a schema 3 segment's", True),
    ("segment", lambda m: {**m, "segment": "s1-1"}, "is not a schema 3 segment's", True),
])
def test_foreign_manifest_is_refused_with_a_rebuild_hint(two_states, which, edit, pattern,
                                                         plain):
    cfg, ans_a, _ = two_states
    path = segment_path(cfg.index_dir, "chess.md") if which == "segment" \
        else read_manifest(cfg.index_dir)[0]
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(edit(manifest)))
    forget_corpus(cfg.index_dir)
    with pytest.raises(IndexMismatch, match=pattern) as info:
        rag.ask("solar", config=cfg)
    assert "python -m rag.build --rebuild" in str(info.value)
    assert rag.build(config=cfg, rebuild=not plain).wrote
    assert answers(cfg) == ans_a


@pytest.mark.parametrize("content, error, pattern", [
    (b"", IndexMissing, "no index in .*python -m rag.build"),
    (b"v123-does-not-exist", IndexMismatch, "is missing its manifest"),
])
def test_broken_current_pointer(two_states, content, error, pattern):
    cfg, ans_a, _ = two_states
    (cfg.index_dir / "CURRENT").write_bytes(content)
    forget_corpus(cfg.index_dir)
    with pytest.raises(error, match=pattern):
        rag.ask("solar", config=cfg)
    assert rag.build(config=cfg).wrote and answers(cfg) == ans_a


@pytest.mark.parametrize("which", ["version", "segment"])
def test_manifest_that_is_not_json(two_states, which):
    cfg, ans_a, _ = two_states
    path = segment_path(cfg.index_dir, "chess.md") if which == "segment" \
        else read_manifest(cfg.index_dir)[0]
    (path / "manifest.json").write_bytes(b'{"schema": 3, "segments": [{\xff')
    forget_corpus(cfg.index_dir)
    with pytest.raises(IndexMismatch, match="manifest .* is not valid JSON.*--rebuild"):
        rag.ask("solar", config=cfg)


def test_cli_reports_a_damaged_index_in_one_line(two_states, tmp_path):
    cfg, _, _ = two_states
    (segment_path(cfg.index_dir, "chess.md") / "chunks.npy").write_bytes(b"\x93NUMPY garbage")
    code = ("import sys; sys.path.insert(0, %r); import conftest, runpy; "
            "sys.argv = ['rag.ask', 'solar']; runpy.run_module('rag.ask', run_name='__main__')"
            % str(TESTS))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, **BUILD_ENV, "RAG_INDEX": str(cfg.index_dir)},
                       timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "chunks.npy" in r.stderr and "--rebuild" in r.stderr


def test_app_shows_a_damaged_index_instead_of_crashing(two_states):
    import httpx

    from rag.app.web import BackgroundServer, create_app

    cfg, ans_a, _ = two_states
    (segment_path(cfg.index_dir, "chess.md") / "chunks.npy").write_bytes(b"\x93NUMPY garbage")
    forget_corpus(cfg.index_dir)
    with BackgroundServer(create_app(cfg), host="127.0.0.1", port=0) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            r = http.post("/api/ask", json={"question": "Who won the final game?"})
            assert r.status_code == 503
            assert "chunks.npy" in r.json()["error"] and "--rebuild" in r.json()["error"]
            assert http.get("/").status_code == 200  # the page still loads
            # the UI's own API (Gradio's queue) reports it as an error message
            r = http.post("/gradio_api/call/answer",
                          json={"data": ["Who won the final game?", 5, "hybrid"]})
            assert r.status_code == 200, r.text
            events = http.get(f"/gradio_api/call/answer/{r.json()['event_id']}").text
            assert "event: error" in events and "needs to be rebuilt" in events
            assert "chunks.npy" in events and "Traceback" not in events
            # repaired as the error says (--rebuild: a build reads only the manifests):
            # the running app answers again
            assert rag.build(config=cfg, rebuild=True).wrote
            r = http.post("/api/ask", json={"question": QUESTIONS[2]})
            assert r.status_code == 200 and r.json()["text"] == ans_a[2].text


# -- two builds at once --------------------------------------------------------------------

def test_second_build_stops_with_a_clear_message_when_the_lock_is_held(two_states):
    from filelock import FileLock

    cfg, ans_a, _ = two_states
    set_source(cfg, STATE_B)
    said = []
    with FileLock(str(cfg.index_dir / ".build.lock")):
        with pytest.raises(BuildError, match="another build is still writing .* try again"):
            rag.build(config=cfg.replace(lock_timeout=0.2), log=said.append)
    assert any("waiting for it to finish" in m for m in said)
    assert answers(cfg) == ans_a  # nothing was written


def _lock_step(zygote, cfg) -> str:
    """The step at which a build holds the lock."""
    return "lock<#1"


def test_second_build_waits_for_the_first_then_completes(two_states, zygote):
    cfg, ans_a, ans_b = two_states
    after_lock = _lock_step(zygote, cfg)  # state A is unchanged: nothing written
    set_source(cfg, STATE_B)
    first = zygote.start(cfg, halt=after_lock)  # holds the lock and waits there
    assert first.wait_halt() == "lock<#1"
    # a second build told not to wait stops at once with a clear message, exit 1
    impatient = zygote.run(cfg, env={"RAG_LOCK_TIMEOUT": "0"})
    assert impatient.exit_code == 1
    assert "another build is still writing" in impatient.stderr
    assert "Traceback" not in impatient.stderr
    # a patient second build waits (it says so) and writes nothing meanwhile
    patient = zygote.start(cfg, quiet=False)
    deadline = time.monotonic() + 120  # only against a hang; normally a few ms
    while "waiting for it to finish" not in patient.stderr and time.monotonic() < deadline:
        zygote.pump(block=False)
        time.sleep(0.01)
    assert "another build is writing" in patient.stderr and patient.status is None
    assert [n for _, n in patient.events if n.startswith(("np.save", "rename", "lock<"))] == []
    zygote.resume(first)
    assert first.wait() == 0 and patient.wait() == 0, patient.stderr
    # the first wrote and published, then the second found nothing to do
    assert "rename>#1" in [n for _, n in first.events]
    assert "rename>#1" not in [n for _, n in patient.events]
    assert live_state(cfg, ans_a, ans_b) == "B"


# -- ask while a build replaces the index -------------------------------------------------------

def test_answers_during_rebuilds_come_wholly_from_one_version(two_states, zygote):
    cfg, ans_a, ans_b = two_states
    expected = [{a, b} for a, b in zip(ans_a, ans_b)]
    stop = threading.Event()
    bad, errors, count = [], [], [0]

    def reader(offset: int) -> None:
        i = offset
        while not stop.is_set():
            q = i % len(QUESTIONS)
            try:
                got = rag.ask(QUESTIONS[q], config=cfg)
            except Exception as exc:  # noqa: BLE001 - any error is a failure
                errors.append(repr(exc))
                continue
            if got not in expected[q]:
                bad.append((QUESTIONS[q], got))
            count[0] += 1
            i += 1

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(12):  # twelve builds publish while the readers ask
            set_source(cfg, STATE_B if i % 2 == 0 else STATE_A)
            child = zygote.run(cfg)
            assert child.exit_code == 0, child.stderr
            before = count[0]
            while count[0] < before + 4 and not errors:
                time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and bad == []
    assert count[0] >= 48


def test_a_version_removed_by_later_builds_stays_readable_from_any_thread(two_states):
    """An ask that started on a version keeps reading it even if two more builds publish
    and clean it up (the version and its segments) meanwhile (the reader's thread may
    never have touched it before)."""
    cfg, ans_a, _ = two_states
    forget_corpus(cfg.index_dir)
    old = live.load_index(cfg.index_dir, cfg)
    volcano = old.parts[old.where["volcano.txt"][0]].index
    for state in (STATE_B, STATE_A, STATE_B):
        set_source(cfg, state)
        assert rag.build(config=cfg).wrote
    assert not old.path.exists() and not volcano.path.exists()  # collected
    got = []
    worker = threading.Thread(target=lambda: got.append(
        ([old.article(aid).title for aid in old.where], old.list_articles(),
         [volcano.article(i).title for i in range(len(volcano.article_ids))])))
    worker.start()
    worker.join()
    titles, listed, in_segment = got[0]
    assert "Volcano erupts in Iceland" in titles and len(listed) == old.n_articles == 4
    assert "Volcano erupts in Iceland" in in_segment


# -- disk full ----------------------------------------------------------------------------

def _enospc(path=None):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path else None)


def _fail_np_save(real):
    def save(file, arr, *a, **k):
        if hasattr(file, "write"):
            file.write(b"\x93NUMPY partial")
        raise _enospc(getattr(file, "name", None))
    return save


def _fail_after_partial_write(real):
    def write(path, *a, **k):
        Path(path).write_bytes(b"partial")
        raise _enospc(path)
    return write


def _fail_json(name, nth=1):
    """Fail the ``nth`` write of a file called ``name`` (manifest.json: the segment's
    first, then the version's)."""
    def make(real):
        seen = [0]

        def write(path, obj, raw=None):
            if Path(path).name == name:
                seen[0] += 1
                if seen[0] == nth:
                    Path(path).write_text('{"schema": 3, "ver')
                    raise _enospc(path)
            return real(path, obj, raw=raw)
        return write
    return make


def _keyword_full(real):
    def build_keyword_writer(texts, analyzers=None):
        real(texts, analyzers)  # the postings are built, then writing them fails half-way

        def write(folder):
            folder.mkdir()
            (folder / "vocab.json").write_text('["parti')
            raise _enospc(folder / "vocab.json")
        return write
    return build_keyword_writer


def _fail_always(real):
    def fail(*a, **k):
        raise _enospc(a[0] if a else None)
    return fail


def _faiss_full(real):
    def write(index, path):  # what faiss really raises on a full disk
        Path(path).write_bytes(b"IxF2partial")
        raise RuntimeError("Error in void faiss::write_index(const Index*, IOWriter*, int) at "
                           "index_write.cpp:499: Error: 'ret == (size * 4)' failed: write "
                           f"error in {path}: 65491 != 512000 (No space left on device)")
    return write


def _sqlite_full(real):
    import sqlite3

    def connect(target, *args, **kwargs):
        con = real(target, *args, **kwargs)
        if str(target).startswith("file:"):  # a reader: leave it alone
            return con

        class Full:  # what sqlite3 really raises on a full disk
            def execute(self, *a):
                return con.execute(*a)

            def executemany(self, *a):
                raise sqlite3.OperationalError("database or disk is full")

            def commit(self):
                con.commit()

            def rollback(self):
                con.rollback()

            def close(self):
                con.close()
        return Full()
    return connect


@pytest.mark.parametrize("target, attr, make", [
    ("numpy", "save", _fail_np_save),
    ("rag.index.store", "_write_articles", _fail_after_partial_write),
    ("sqlite3", "connect", _sqlite_full),
    ("faiss", "write_index", _faiss_full),
    ("faiss", "write_index", _fail_always),
    ("rag.index.keyword", "build_keyword_writer", _keyword_full),
    ("rag.index.store", "_write_json", _fail_json("manifest.json")),
    ("rag.index.store", "_write_json", _fail_json("manifest.json", nth=2)),
    ("rag.index.store", "_write_json", _fail_json("CURRENT.tmp")),
    ("os", "fsync", _fail_always),
])
def test_disk_full_during_a_build_keeps_the_old_index(two_states, monkeypatch, target, attr,
                                                      make):
    import importlib

    cfg, ans_a, ans_b = two_states
    live = store.current_version(cfg.index_dir)
    segments = sorted(p.name for p in (cfg.index_dir / "segments").iterdir())
    set_source(cfg, STATE_B)
    owner = importlib.import_module(target)
    monkeypatch.setattr(owner, attr, make(getattr(owner, attr)))
    with pytest.raises(OSError) as info:
        rag.build(config=cfg)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert store.current_version(cfg.index_dir) == live
    # no partial file: no unfinished version or segment; a segment that was written
    # whole before the version failed is listed by no version, and goes with the next
    # build's clean-up
    assert not list(cfg.index_dir.glob(".tmp-*"))
    assert not list(cfg.index_dir.glob("segments/.tmp-*"))
    now = sorted(p.name for p in (cfg.index_dir / "segments").iterdir())
    assert set(now) - set(segments) <= {p.name for p in (cfg.index_dir / "segments").iterdir()
                                        if (p / "manifest.json").is_file()}
    assert set(segments) <= set(now)  # the live version's, untouched
    assert answers(cfg) == ans_a
    r = rag.build(config=cfg)  # space again: the next build completes
    assert r.wrote and answers(cfg) == ans_b
    assert_no_leftovers(cfg.index_dir)


DISK_FULL_CHILD = r'''
import contextlib, io, json, os, sys
sys.path.insert(0, sys.argv[1])
import importlib
import conftest, rag
from pathlib import Path
build_cli = importlib.import_module("rag.build")
from rag.answer.pipeline import forget_corpus
from rag.index import store
from rag.config import Config
src, idx = Path(sys.argv[2]), Path(sys.argv[3])
cfg = Config(source=src, index_dir=idx, model="fake", chunk_tokens=40, chunk_overlap=5,
             abstain_threshold=0.0)
out = {}
rag.build(config=cfg)
published = store.current_version(idx)
before = [rag.ask(q, config=cfg) for q in sys.argv[4:]]
(src / "huge.txt").write_text("Huge\n\nA" + "a" * 600_000 + ".")  # cannot fit in 512 KiB
err = io.StringIO()
with contextlib.redirect_stderr(err):
    out["code"] = build_cli.main(["--source", str(src), "--index", str(idx), "--quiet"])
out["stderr"] = err.getvalue()
out["same_version"] = store.current_version(idx) == published
out["tmp_left"] = [p.name for p in [*idx.glob(".tmp-*"), *idx.glob("segments/.tmp-*")]]
forget_corpus(idx)
out["same_answers"] = [rag.ask(q, config=cfg) for q in sys.argv[4:]] == before
(src / "huge.txt").write_text("Small again\n\nThe new article fits on the disk.")
out["next"] = rag.build(config=cfg).wrote
forget_corpus(idx)
out["new_found"] = rag.ask("Does the new article fit on the disk?",
                           config=cfg).citations[0].article_id
print(json.dumps(out))
'''


@pytest.mark.model
def test_real_disk_full_on_a_small_tmpfs(cfg, tmp_path):
    """A real ENOSPC: the index folder is a 512 KiB tmpfs in a private mount namespace.
    (``model``: the child's ``rag.build`` command runs with the default model.)"""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to mount a private tmpfs")
    set_source(cfg, STATE_A)
    cfg.index_dir.mkdir()
    script = tmp_path / "disk_full.py"
    script.write_text(DISK_FULL_CHILD)
    cmd = (f'mount -t tmpfs -o size=512k tmpfs "{cfg.index_dir}" && exec "{sys.executable}" '
           f'"{script}" "$@"')
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd,
                        "sh", str(TESTS), str(cfg.source), str(cfg.index_dir), *QUESTIONS],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if r.returncode and "mount" in r.stderr and "permission" in r.stderr.lower():
        pytest.skip("mounting a tmpfs is not permitted here: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["code"] == 1, out
    assert out["stderr"].strip().count("\n") == 0 and "Traceback" not in out["stderr"]
    assert "No space left on device" in out["stderr"] or "full" in out["stderr"], out
    assert "previous index is unchanged" in out["stderr"]
    assert out["same_version"] and out["tmp_left"] == [] and out["same_answers"]
    assert out["next"] and out["new_found"] == "huge.txt"


def test_build_cli_reports_disk_full_in_one_line(two_states, monkeypatch, capsys):
    import importlib

    import faiss

    cfg, ans_a, _ = two_states
    set_source(cfg, STATE_B)
    monkeypatch.setattr(faiss, "write_index", _fail_always(None))
    for key, value in BUILD_ENV.items():
        monkeypatch.setenv(key, value)
    code = importlib.import_module("rag.build").main(
        ["--source", str(cfg.source), "--index", str(cfg.index_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().count("\n") == 0
    assert "No space left on device" in err and "previous index is unchanged" in err
    monkeypatch.undo()
    assert answers(cfg) == ans_a
