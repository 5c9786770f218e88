"""``python -m rag.fit --model``: answer parameters fitted for another embedding model,
stored beside the index and used by asking (issue 27, item 2)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import rag
from rag.answer.params import INDEX_PARAMS, answer_model
from rag.embedding import model as embed
from tests.conftest import FakeEmbedder


class OtherFake(FakeEmbedder):
    model_id = "other-fake-64"


@pytest.fixture
def other_model(monkeypatch):
    instance = OtherFake()
    monkeypatch.setitem(embed.EMBEDDERS, "other", lambda **settings: instance)
    monkeypatch.setattr(embed, "_cache", {})
    return instance


def test_fit_stores_parameters_beside_the_index_and_asking_uses_them(cfg, other_model,
                                                                     capsys):
    from rag.fit import main

    cfg = dataclasses.replace(cfg, model="other", abstain_threshold=None)  # the fitted one
    (cfg.source / "museum.txt").write_text(
        "The museum was founded in 1901 by Ada Voss. It holds four thousand paintings.",
        encoding="utf-8")
    rag.build(config=cfg)
    before = rag.ask("Who founded the museum?", config=cfg)
    assert "calibrated for the bundled MiniLM" in before.message
    assert "python -m rag.fit --model other" in before.message
    capsys.readouterr()
    assert main(["--model", "other", "--index", str(cfg.index_dir), "--limit", "120",
                 "--quiet"]) == 0
    said = capsys.readouterr()
    assert "features (" not in said.err and "sentence selection" not in said.out  # quiet
    stored = json.loads((cfg.index_dir / INDEX_PARAMS).read_text())
    assert stored["provenance"]["model"] == "other-fake-64"
    assert stored["provenance"]["command"] == "python -m rag.fit --model other"
    assert 0.0 < stored["threshold"] < 1.0 and stored["calibration"]
    after = rag.ask("Who founded the museum?", config=cfg)
    assert "calibrated" not in after.message
    # the stored threshold decides now, not the shipped one
    assert after.explain.threshold == stored["threshold"] != answer_model(False).threshold


def test_parameters_of_another_model_are_not_used(cfg, other_model):
    cfg = cfg.replace(model="other")
    (cfg.source / "a.txt").write_text("The bridge opened in 1932 after six years of work.",
                                      encoding="utf-8")
    rag.build(config=cfg)
    shipped = answer_model(False).to_dict()
    (cfg.index_dir / INDEX_PARAMS).write_text(json.dumps(
        {**shipped, "provenance": {"model": "some-other-model"}}))
    assert "calibrated for the bundled MiniLM" in rag.ask("When did the bridge open?",
                                                          config=cfg).message


def test_rag_eval_reports_the_threshold_asking_used(cfg, other_model, tmp_path,
                                                    monkeypatch):
    from rag.evaluation.run import main as eval_main

    monkeypatch.setenv("RAG_SELECTOR", "0")
    data = tmp_path / "set"
    data.mkdir()
    text = "The museum was founded in 1901 by Ada Voss. It holds four thousand paintings."
    (data / "articles.jsonl").write_text(json.dumps(
        {"id": "museum", "title": "The museum", "text": text}) + "\n", encoding="utf-8")
    (data / "questions.jsonl").write_text(json.dumps(
        {"id": "q1", "question": "Who founded the museum?", "answers": ["Ada Voss"],
         "answer_starts": [text.index("Ada Voss")], "article_id": "museum",
         "is_impossible": False}) + "\n", encoding="utf-8")
    cache, out = tmp_path / "cache", tmp_path / "out.json"
    argv = ["--model", "other", "--index-cache", str(cache), "--paths", "config", "--quiet",
            "--out", str(out), str(data)]
    assert eval_main(argv) == 0
    assert json.loads(out.read_text())["threshold"] == answer_model(False).threshold
    (index,) = [p for p in cache.rglob("index") if p.is_dir()]
    fitted = {**answer_model(False).to_dict(), "threshold": 0.123,
              "provenance": {"model": "other-fake-64"}}
    (index / INDEX_PARAMS).write_text(json.dumps(fitted))
    assert eval_main(argv) == 0
    assert json.loads(out.read_text())["threshold"] == 0.123
