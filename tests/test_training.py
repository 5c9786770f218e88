"""The selector's training code: data split, pairs, context, and a few real steps."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.training.data import (context_of, is_validation, make_context, make_pairs,
                               read_questions, split, swapped_question, word_pools)

TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "train" / "sentences.jsonl"


def _record(i: int, group: str, ordered: bool = True) -> dict:
    return {"id": f"{'selqa' if ordered else 'squad-du'}-{i}", "source": "x", "group": group,
            "question": f"question {i}?", "candidates": [f"s{i}a.", f"s{i}b.", f"s{i}c."],
            "labels": [0, 1, 0]}


def test_split_is_by_group_and_stable():
    records = [_record(i, f"g{i % 40}") for i in range(400)]
    train, val = split(records)
    assert val and train
    assert {r["group"] for r in train}.isdisjoint({r["group"] for r in val})
    assert [r["id"] for r in split(records)[1]] == [r["id"] for r in val]
    assert all(is_validation(r["group"]) for r in val)


def test_pairs_keep_positives_and_sample_negatives():
    records = [_record(i, "g") for i in range(20)]
    pairs = make_pairs(records, negatives=1, seed=3)
    assert sum(p.label for p in pairs) == 20 and len(pairs) == 40
    assert make_pairs(records, 1, 3) == pairs  # deterministic for a seed
    assert len(make_pairs(records, negatives=-1, seed=3)) == 60


def test_context_is_title_and_previous_sentence_when_ordered():
    r = _record(1, "Eiffel Tower")
    assert context_of(r, 0) == "Eiffel Tower"
    assert context_of(r, 1) == "Eiffel Tower | s1a."
    assert context_of(_record(1, "squad-block-0", ordered=False), 1) == ""
    long_prev = " ".join(f"w{i}" for i in range(100))
    assert make_context("T", long_prev).split(" | ")[1].split()[0] == "w60"


def _asked(question: str, answer: str, others: list[str], group: str = "DeepSeek",
           i: int = 0) -> dict:
    return {"id": f"selqa-{group}-{i}", "source": "x", "group": group, "question": question,
            "candidates": [answer, *others], "labels": [1] + [0] * len(others)}


def test_a_swapped_question_is_one_its_sentence_does_not_answer():
    records = [
        _asked("How many downloads does the DeepSeek app have?",
               "The DeepSeek app has close to 2 million downloads.", ["It was founded in 2023."]),
        _asked("How many employees work at the company?",
               "The company has 160 employees.", ["Its app is popular."], i=1),
        _asked("When was the company founded?", "It was founded in 2023.", [], i=2),
        _asked("Who founded Reflexivity?", "Giuseppe Sette founded Reflexivity.", [], i=3),
    ]
    pools = word_pools(records)
    assert {"downloads", "employees", "DeepSeek", "Reflexivity"} <= set(pools["DeepSeek"])
    assert "does" not in pools["DeepSeek"]  # words too common to carry a question
    for seed in range(20):
        rnd = random.Random(seed)
        q = swapped_question(records[0], pools["DeepSeek"], rnd)
        # a name is swapped for a name; the result is a question the sentence lacks a word of
        assert q is not None and q != records[0]["question"]
        assert q.startswith("How many downloads does the ") and q.endswith(" app have?")
        assert q.split()[5] in {"Reflexivity"}
        q1 = swapped_question(records[1], pools["DeepSeek"], rnd)
        # 'employees' -> 'downloads' (plural for plural); 'company' has no word of its shape
        assert q1 in ("How many downloads work at the company?", None)
    # no answering sentence, or nothing to swap with: no twin
    assert swapped_question(dict(records[0], labels=[0, 0]), pools["DeepSeek"], rnd) is None
    assert swapped_question(records[0], [], rnd) is None
    pairs = make_pairs(records, negatives=-1, seed=0, swaps=True)
    twins = [p for p in pairs if p.qid.endswith("~swap")]
    assert 2 <= len(twins) <= 3 and all(p.label == 0 for p in twins)
    assert not any(t.qid == "selqa-DeepSeek-2~swap" for t in twins)  # 'founded': no other -ed
    assert make_pairs(records, -1, 0, swaps=True) == pairs  # deterministic for a seed
    for t in twins:  # paired with the sentence that answered the original question
        r = next(r for r in records if r["id"] + "~swap" == t.qid)
        assert t.sentence == r["candidates"][0] and t.question != r["question"]


@pytest.mark.model
def test_a_few_steps_lower_the_loss():
    """Smoke test of the real training loop: 50 real questions (or made-up ones without
    the training data), a one-layer copy of the bundled model, loss goes down."""
    torch = pytest.importorskip("torch")
    from rag.training.train import load_model, mean_loss, train_steps

    if TRAIN.is_file():
        records = read_questions(TRAIN)[:50]
    else:
        records = [_record(i, f"g{i}") for i in range(50)]
    pairs = make_pairs(records, negatives=2, seed=0)
    torch.manual_seed(0)
    tok, model = load_model(layers=1)
    before = mean_loss(model, tok, pairs, 64, "cpu")
    losses = train_steps(model, tok, pairs, total=12, batch=16, lr=3e-4, max_len=64,
                         rnd=random.Random(0), device="cpu", log=None)
    after = mean_loss(model, tok, pairs, 64, "cpu")
    assert len(losses) == 12
    assert after < before - 0.02, (before, after)


def test_listwise_loss_matches_the_softmax_with_a_no_answer_option():
    """Oracle: the loss of each question is -log(mass on its answering sentences) under a
    softmax over its logits and a fixed 0 ("no answer"); a question without an answering
    sentence puts its target on "no answer"."""
    torch = pytest.importorskip("torch")
    import math

    from rag.training.train import listwise_loss

    z = torch.tensor([2.0, -1.0, 0.5, 1.0, 3.0])
    labels = [1, 0, 1, 0, 0]
    seg = [0, 0, 0, 1, 1]
    q0 = -math.log((math.exp(2.0) + math.exp(0.5)) / (1 + math.exp(2.0) + math.exp(-1.0) + math.exp(0.5)))
    q1 = -math.log(1 / (1 + math.exp(1.0) + math.exp(3.0)))
    assert float(listwise_loss(z, labels, seg)) == pytest.approx((q0 + q1) / 2, rel=1e-6)


def test_question_batches_keep_every_question_whole():
    pytest.importorskip("torch")
    from transformers import AutoTokenizer

    from rag.training.train import base_model_dir, question_batches

    records = [_record(i, f"g{i}") for i in range(40)]
    pairs = make_pairs(records, negatives=2, seed=0)
    tok = AutoTokenizer.from_pretrained(base_model_dir())
    seen: list[int] = []
    for enc, labels, seg in question_batches(pairs, 12, random.Random(0), tok, 64):
        assert len(labels) == len(seg) == enc["input_ids"].shape[0]
        assert seg == sorted(seg) and seg[0] == 0
        seen.append(len(set(seg)))
    assert sum(seen) == len({p.qid for p in pairs})  # each question in exactly one batch


@pytest.mark.model
def test_a_few_listwise_steps_lower_the_loss():
    torch = pytest.importorskip("torch")
    from rag.training.train import listwise_loss, load_model, question_batches, train_steps

    records = read_questions(TRAIN)[:50] if TRAIN.is_file() else \
        [_record(i, f"g{i}") for i in range(50)]
    pairs = make_pairs(records, negatives=2, seed=0)
    torch.manual_seed(0)
    tok, model = load_model(layers=1)

    def mean_listwise():
        model.eval()
        with torch.no_grad():
            vals = [float(listwise_loss(model(**enc).logits[:, 0], labels, seg))
                    for enc, labels, seg in question_batches(pairs, 16, random.Random(0), tok, 64)]
        return sum(vals) / len(vals)

    before = mean_listwise()
    train_steps(model, tok, pairs, total=12, batch=16, lr=3e-4, max_len=64,
                rnd=random.Random(0), device="cpu", log=None, loss="listwise")
    assert mean_listwise() < before - 0.02
