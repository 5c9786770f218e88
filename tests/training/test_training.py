"""The selector's training code: data split, pairs, context, and a few real steps."""

from __future__ import annotations

import random

import pytest

from rag.training.data import (context_of, is_validation, make_context, make_pairs,
                               read_questions, split, swapped_question, word_pools)
from tests.conftest import SHARED

TRAIN = SHARED / "train" / "sentences.jsonl"


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


# -- paragraphs.jsonl (issue 23) ------------------------------------------------------

def _paragraph(pid: str, group: str, source: str, context: str, qas: list) -> dict:
    out = []
    for i, (q, answer) in enumerate(qas):
        if answer is None:
            out.append({"id": f"{pid}-{i}", "question": q, "answers": [], "is_impossible": True,
                        "plausible_answers": [{"text": "1932", "start": context.index("1932")}]
                        if "1932" in context else []})
        else:
            out.append({"id": f"{pid}-{i}", "question": q, "is_impossible": False,
                        "answers": [{"text": answer, "start": context.index(answer)}]})
    return {"id": pid, "source": source, "group": group, "context": context, "qas": out}


BRIDGE = ("The bridge was opened to traffic in 1932 after six years of work. Its steel came "
          "from a mill in Middlesbrough. The bridge carries eight lanes of traffic. Tourists "
          "climb the arch of the bridge on guided tours. The arch is 134 metres high.")
TEA = ("Matcha is a powdered green tea. It is made from shade-grown leaves. The tea is "
       "whisked with hot water. Japanese tea ceremonies use matcha.")


def _paragraphs() -> list[dict]:
    return [
        _paragraph("squad11-Bridge-0", "Bridge", "SQuAD v1.1 train", BRIDGE,
                   [("When was the bridge opened to traffic?", "1932"),
                    ("Where did the bridge's steel come from?", "a mill in Middlesbrough"),
                    ("How many lanes does the bridge carry?", "eight lanes"),
                    ("How high is the arch of the bridge?", "134 metres")]),
        _paragraph("squad11-Tea-0", "Tea", "SQuAD v1.1 train", TEA,
                   [("What is matcha?", "a powdered green tea"),
                    ("What is the tea whisked with?", "hot water")]),
        _paragraph("tydi-en-train-0", "tydi-en-0", "TyDi QA GoldP (English)", TEA,
                   [("What leaves is matcha made from?", "shade-grown leaves")]),
        _paragraph("squad2-Bridge-1", "Bridge2", "SQuAD 2.0 train", BRIDGE,
                   [("When was the bridge closed to traffic?", None)]),
    ]


def test_paragraph_records_label_the_answering_sentence_and_never_a_copy_of_the_answer():
    from rag.training.paragraphs import build_records, counts, record_pairs, split_records

    paras = _paragraphs()
    recs = build_records(paras, seed=1, squad_questions=3, hard=2, tydi_repeats=2,
                         removed=2, offtopic=3)
    assert build_records(paras, seed=1, squad_questions=3, hard=2, tydi_repeats=2,
                         removed=2, offtopic=3) == recs  # deterministic for a seed
    qa = {q["id"]: q for p in paras for q in p["qas"]}
    kinds = counts(recs)
    assert kinds["squad/answer"] == 3 and kinds["squad/impossible"] == 1
    assert kinds["tydi/answer"] == 2  # used twice, with other negatives
    for r in recs:
        assert len(r["candidates"]) == len(r["labels"]) and r["candidates"]
        base = qa[r["id"].split("~")[0]]
        answer = base["answers"][0]["text"] if base["answers"] else None
        if r["kind"] == "answer":
            assert r["labels"][0] == 1 and answer in r["candidates"][0]
            assert not any(answer.lower() in c.lower() for c in r["candidates"][1:])
            assert sum(r["labels"]) == 1
        else:
            assert not any(r["labels"])
        if r["kind"] == "removed":  # the question against its paragraph minus the answer
            assert not any(answer.lower() in c.lower() for c in r["candidates"])
            assert all(c in BRIDGE + TEA for c in r["candidates"])
        if r["kind"] == "impossible":  # the plausible span's sentence comes first
            assert "1932" in r["candidates"][0]
        if r["kind"] == "offtopic":
            src = next(p for p in paras if p["group"] == r["group"])
            assert r["candidates"][0] not in src["context"]
    # the hardest negative shares the question's words: "bridge", "traffic"
    opened = next(r for r in recs if r["question"].startswith("When was the bridge opened"))
    assert "traffic" in opened["candidates"][1]
    train, val = split_records(recs)
    assert {r["group"] for r in train}.isdisjoint({r["group"] for r in val})
    pairs = record_pairs(recs, 0)
    assert len(pairs) == sum(len(r["candidates"]) for r in recs)
    assert all(p.context == "" for p in pairs)  # the pipeline reads the sentence alone


@pytest.mark.model
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    """Checkpoints every 2 steps; a run stopped at step 3 and started again ends with the
    weights of a run that was never stopped (same batches, schedule and dropout)."""
    torch = pytest.importorskip("torch")
    from rag.training.train import batch_plan, load_model, train_steps

    records = [_record(i, f"g{i}") for i in range(30)]
    pairs = make_pairs(records, negatives=2, seed=0)
    assert batch_plan(pairs, 8, 5, random.Random(0)) == batch_plan(pairs, 8, 5, random.Random(0))

    def run(ckpt, curve):
        torch.manual_seed(0)
        tok, model = load_model(layers=1)
        losses = train_steps(model, tok, pairs, total=4, batch=8, lr=3e-4, max_len=32,
                             rnd=random.Random(0), device="cpu", log=None, checkpoint=ckpt,
                             checkpoint_every=2, curve=curve, curve_every=3)
        return model, losses

    straight, losses = run(None, lambda step: {"x": step})

    def stop(step):
        raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, stop)
    assert ckpt.is_file()
    resumed, losses2 = run(ckpt, lambda step: {"x": step})
    assert losses2 == pytest.approx(losses, abs=1e-6) and len(losses2) == 4
    for (n, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), n
    assert [p["step"] for p in train_steps.curve] == [3, 4]
