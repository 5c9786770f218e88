"""Settings from the environment (rag/config.py): a ``RAG_*`` variable that is no setting
is named on stderr by every entry point, with the closest setting, instead of being
ignored without a word (``RAG_INDEX_DIR=...`` once built into the default ``index/``)."""

from __future__ import annotations

import re
from dataclasses import fields

from rag import cli
from rag.config import _ENV_ALIASES, OTHER_ENV, Config
from tests.conftest import ROOT


def test_a_misspelt_setting_is_named_with_the_closest_one():
    got = Config.unknown_env({"RAG_INDEX_DIR": "/x", "RAG_SOURCES": "y", "RAG_THREAD": "2",
                              "RAG_FOO": "1", "RAG_K": "3", "RAG_CACHE": "/c", "HOME": "/"})
    assert got == ["RAG_FOO is not a setting and is ignored",
                   "RAG_INDEX_DIR is not a setting and is ignored (did you mean RAG_INDEX?)",
                   "RAG_SOURCES is not a setting and is ignored (did you mean RAG_SOURCE?)",
                   "RAG_THREAD is not a setting and is ignored (did you mean RAG_THREADS?)"]


def test_every_variable_the_code_reads_is_known():
    known = {_ENV_ALIASES.get(f.name, "RAG_" + f.name.upper()) for f in fields(Config)}
    assert Config.unknown_env({k: "1" for k in known | OTHER_ENV}) == []
    read = set()
    for path in [*(ROOT / "rag").rglob("*.py"), *(ROOT / "scripts").iterdir()]:
        read |= set(re.findall(r"\bRAG_[A-Z][A-Z_0-9]*", path.read_text(errors="ignore")))
    assert read and Config.unknown_env({k: "1" for k in read}) == []


def test_the_command_line_warns_on_stderr(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "mine"))
    code = cli.ask_main(["What?", "--index", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code != 0  # no index there
    assert err.startswith("rag-ask: warning: RAG_INDEX_DIR is not a setting and is "
                          "ignored (did you mean RAG_INDEX?)\n")
