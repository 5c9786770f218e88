"""Progress bars (rag.ingest.progress): redrawn on a terminal, plain lines anywhere else
(a server's log must not fill with carriage returns)."""

from __future__ import annotations

import io
import shutil

import rag
from rag.ingest import progress
from tests.conftest import SEEDS, STEELWORKS


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def copy_seeds(cfg) -> None:
    """Three real articles: the seed article and two news stories."""
    for path in SEEDS.glob("*.txt"):
        shutil.copy(path, cfg.source / path.name)
    (cfg.source / "steelworks.txt").write_text(STEELWORKS, encoding="utf-8")
    (cfg.source / "chess.txt").write_text(
        "Chess world championship\n\nThe match in Singapore ended after fourteen games. "
        "Gukesh won the final game against Ding Liren.", encoding="utf-8")


def test_a_build_writes_plain_lines_to_a_stderr_that_is_no_terminal(cfg, fake_embedder,
                                                                     capsys):
    copy_seeds(cfg)
    rag.build(config=cfg, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert any(x.startswith("loading: 100%|") and "3/3" in x for x in lines), err
    assert any(x.startswith("embedding: 100%|") for x in lines), err


def test_plain_lines_come_at_most_one_a_period_and_a_last_one(monkeypatch):
    out = io.StringIO()
    for _ in progress.progress_bar(range(500), stream=out, desc="loading", unit="file"):
        pass
    lines = out.getvalue().split("\n")
    # the start and the end only (500 steps well inside PLAIN_EVERY seconds)
    assert [x.split("|")[0] for x in lines if x] == ["loading:   0%", "loading: 100%"]
    assert out.getvalue().endswith("500/500" + lines[-2].split("500/500")[1] + "\n")
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)  # every step: a line of its own
    out = io.StringIO()
    with progress.progress_bar(total=3, stream=out, desc="embedding", unit="chunk") as bar:
        for _ in range(3):
            bar.update(1)
    assert [x.split("|")[0] for x in out.getvalue().splitlines()] == [
        "embedding:   0%", "embedding:  33%", "embedding:  67%", "embedding: 100%"]
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_the_redrawn_bar_and_disabled_writes_nothing():
    tty = Terminal()
    for _ in progress.progress_bar(range(3), stream=tty, desc="loading"):
        pass
    assert "\rloading: 100%" in tty.getvalue()
    quiet = io.StringIO()
    for _ in progress.progress_bar(range(3), stream=quiet, enabled=False, desc="loading"):
        pass
    assert quiet.getvalue() == ""
