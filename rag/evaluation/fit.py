"""Fitting the sentence-selection weights and the confidence calibration of
:mod:`rag.answer.extract` (``python -m rag.eval DATA_DIR --fit``).

Two fits (plain numpy, Newton's method with a small ridge penalty):

1. selection, a conditional logit over the sentences of the retrieved passages of each
   answerable question (one choice per question: the softmax over its candidates should
   put its mass on the sentences that are from the gold article and contain a gold
   answer, SQuAD normalisation), so every question weighs the same; printed with the
   variants it is compared with and an article-wise 4-fold cross-validation;
2. calibration, a logistic regression over the quote chosen for every question by the
   shipped selection weights: label 1 when it contains a gold answer; unanswerable and
   off-topic questions are 0.

The threshold printed is the largest one that wrongly abstains on at most 5 % of the
answerable questions (the product's promise: rarely refuse what the articles answer).
The result is a new :class:`~rag.answer.params.AnswerModel` (selection weights, calibration and
threshold replaced; pair gap and widening kept); it is written to the one params file
(``rag/answer/answer_model.json``) only with ``--save-params``, so a plain run never changes
behaviour. Nothing here changes a model in place: variants are new values
(``model.replace(...)``). Article-wise 2-fold cross-validation figures are printed as an
honest estimate.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from ..answer import extract
from ..answer.params import AnswerModel, answer_model, sigmoid
from ..answer.params import CALIBRATION_FEATURES as CAL_FEATURES
from ..answer.params import SELECTION_FEATURES as SEL_FEATURES
from . import metrics

MAX_WRONG_ABSTAIN = 0.05


def logistic_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
                 ridge: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Coefficients [bias, *weights] of a weighted, ridge-penalised logistic regression."""
    x1 = np.hstack([np.ones((len(x), 1)), x])
    w = np.ones(len(x)) if w is None else w
    beta = np.zeros(x1.shape[1])
    pen = np.full(x1.shape[1], ridge)
    pen[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x1 @ beta, -50, 50)))
        grad = x1.T @ (w * (y - p)) - pen * beta
        hess = (x1 * (w * p * (1 - p))[:, None]).T @ x1 + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def collect(questions: list[dict], cfg, kind: str, mode: str,
            model: AnswerModel | None = None, progress: bool = True) -> list[dict]:
    """Per question: the evidence of every candidate sentence, their texts and labels
    (with the selector's ``sel`` on the rows it reads when ``model`` rescores)."""
    from tqdm import tqdm

    from ..index.live import load_index
    from ..embedding.model import get_embedder
    from ..answer.search import search

    index = load_index(cfg.index_dir, cfg).single()
    emb = get_embedder(cfg)  # the configured backend: the query vectors ask() uses
    selector = None
    if model is not None and model.rescore:
        from ..answer.selector import get_selector

        selector = get_selector(cfg.threads)
    out = []
    for q in tqdm(questions, desc=f"features ({kind})", unit="q", disable=not progress):
        text = " ".join(q["question"].split())
        qvec = emb.embed_queries([text])[0]
        hits = search(index, text, qvec, max(cfg.candidates, cfg.k), mode)
        ev = extract.sentence_evidence(index, text, qvec, hits)
        if selector is not None:
            ev = extract.add_selector_scores(index, text, ev, model, selector, cfg.k)
        golds = list(q.get("answers") or []) if kind != "offtopic" else []
        rows = []
        for rank, chunk, srow, a, b, f in ev:
            art = index.article(int(index.chunks[chunk][0]))
            label = bool(golds) and art.id == q["article_id"] and \
                metrics.contains_answer(art.text[a:b], golds) > 0
            rows.append((f, label))
        out.append({"q": q, "kind": kind, "golds": golds, "text": text, "qvec": qvec,
                    "hits": hits, "ev": ev, "labels": [r[1] for r in rows]})
    return out


def choose(index, item: dict, model: AnswerModel) -> tuple[dict, str]:
    """The chosen quote's calibration features and text under ``model``."""
    cands = extract.rank_candidates(item["ev"], model)
    if not cands:
        return {k: 0.0 for k in CAL_FEATURES}, ""
    c = cands[0]
    art = index.article(int(index.chunks[c.chunk][0]))
    return c.features, art.text[c.start:c.end]


def conditional_logit_fit(groups: list[tuple[np.ndarray, np.ndarray]], ridge: float = 1e-4,
                          iters: int = 100) -> np.ndarray:
    """Weights ``w`` maximising the mean over questions of log P(a labelled candidate),
    where P(i) = softmax(X @ w)_i over the question's candidates (a conditional logit, as
    in discrete choice): the selection is trained for what it does, pick one of many.
    ``groups`` holds (X, labels) per question; questions without a labelled candidate are
    skipped (all weights 0 when none is labelled). Damped Newton steps (the covariance of
    X under the softmax as the curvature, plus ``ridge``) with a backtracking line
    search."""
    if not groups:
        raise ValueError("no questions to fit on")
    d = groups[0][0].shape[1]
    groups = [(x, y.astype(bool)) for x, y in groups if y.any()]
    if not groups:
        return np.zeros(d)  # nothing labelled: no evidence for any weight

    def value_grad_hess(w):
        val, grad, hess = 0.0, np.zeros(d), np.zeros((d, d))
        for x, y in groups:
            s = x @ w
            e = np.exp(s - s.max())
            p = e / e.sum()
            q = e[y] / e[y].sum()
            val += math.log(e[y].sum() / e.sum())
            mean_p = p @ x
            grad += q @ x[y] - mean_p
            xc = x - mean_p
            hess += (xc * p[:, None]).T @ xc
        n = len(groups)
        return (val / n - ridge * w @ w, grad / n - 2 * ridge * w,
                hess / n + 2 * ridge * np.eye(d))

    w = np.zeros(d)
    val, grad, hess = value_grad_hess(w)
    for _ in range(iters):
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-4:
            new_val, new_grad, new_hess = value_grad_hess(w + t * step)
            if new_val >= val:
                break
            t /= 2
        if t <= 1e-4:
            break
        w, done = w + t * step, abs(new_val - val) < 1e-9
        val, grad, hess = new_val, new_grad, new_hess
        if done:
            break
    return w


def _features(items: list[dict]) -> tuple[str, ...]:
    """The selection features: with the selector's ``sel`` when the items carry it."""
    rescored = any("sel" in r[5] for it in items for r in it["ev"])
    return SEL_FEATURES + ("sel",) if rescored else SEL_FEATURES


def _groups(items: list[dict], names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) per answerable question; with ``sel``, only the rows the
    selector read (they are the ones the selection orders first)."""
    out = []
    for it in items:
        rows = [(r[5], y) for r, y in zip(it["ev"], it["labels"])
                if "sel" not in names or "sel" in r[5]]
        if it["kind"] == "answerable" and rows:
            out.append((np.array([[f[k] for k in names] for f, _ in rows]),
                        np.array([y for _, y in rows], dtype=bool)))
    return out


def fit_selection(items: list[dict]) -> dict:
    """Selection weights fitted on the answerable questions of ``items`` (all 0 when
    there are none)."""
    names = _features(items)
    groups = _groups(items, names)
    w = conditional_logit_fit(groups) if groups else np.zeros(len(names))
    return {k: float(v) for k, v in zip(names, w)}


def article_folds(items: list[dict], k: int) -> list[int]:
    """A fold number per item, by article (questions of one article stay together)."""
    return [int(hashlib.sha256(it["q"]["article_id"].encode()).hexdigest(), 16) % k
            for it in items]


def quote_features(index_of, items: list[dict], model: AnswerModel
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The calibration features of the quote chosen for each item under ``model``, and
    whether it contains a gold answer (1.0) or not."""
    feats, labels = [], []
    for it in items:
        f, quote = choose(index_of(it), it, model)
        feats.append([f.get(k, 0.0) for k in CAL_FEATURES])
        labels.append(float(bool(it["golds"]) and metrics.contains_answer(quote, it["golds"]) > 0))
    return np.array(feats).reshape(len(items), len(CAL_FEATURES)), np.array(labels)


def fit_calibration(index_of, items: list[dict], model: AnswerModel):
    feats, labels = quote_features(index_of, items, model)
    beta = logistic_fit(feats, labels)
    cal = {"bias": float(beta[0]), **{k: float(b) for k, b in zip(CAL_FEATURES, beta[1:])}}
    return cal, feats, labels


def probabilities(cal: dict, feats: np.ndarray) -> np.ndarray:
    z = cal["bias"] + feats @ np.array([cal[k] for k in CAL_FEATURES])
    return np.array([sigmoid(float(v)) for v in z])


def pick_threshold(p: np.ndarray, kinds: list[str]) -> float:
    """The largest threshold abstaining on at most 5 % of the answerable questions."""
    ans = np.sort(p[np.array(kinds) == "answerable"])
    if not len(ans):
        return 0.5
    i = int(math.floor(MAX_WRONG_ABSTAIN * len(ans)))
    return float(math.floor(ans[i] * 100) / 100)  # rounded down: stays within the bound


def shares(p: np.ndarray, kinds: list[str], t: float) -> dict:
    k = np.array(kinds)
    return {kind: float((p[k == kind] < t).mean()) if (k == kind).any() else math.nan
            for kind in ("answerable", "unanswerable", "offtopic")}


def fit_and_print(questions, full_cfg, off_cfg, held, mode, dump=None, save=False,
                  model: AnswerModel | None = None) -> int:
    """Fit, print the comparisons and cross-validations; with ``save`` write the fitted
    :class:`AnswerModel` to the params file."""
    fitted = fit_answer_model(questions, full_cfg, off_cfg, held, mode, dump,
                              model or answer_model())
    if fitted.rescore:  # record the selector these numbers were fitted with
        from ..answer.selector import get_selector

        fitted = fitted.replace(selector=get_selector(full_cfg.threads).version)
    if save:
        fitted.save()
        print(f"written to {fitted.params_file}")
    return 0


def fit_answer_model(questions, full_cfg, off_cfg, held, mode, dump, model: AnswerModel,
                     progress: bool = True) -> AnswerModel:
    """A new answer model fitted on ``questions`` (printing how it compares; a progress
    bar per pass unless ``progress`` is False)."""
    from ..index.live import load_index

    items = collect(questions, full_cfg,
                    "answerable", mode, model, progress)
    for it in items:
        if it["q"].get("is_impossible"):
            it["kind"], it["golds"] = "unanswerable", []
    if off_cfg is not None:
        items += collect([q for q in questions if q["article_id"] in held], off_cfg,
                         "offtopic", mode, model, progress)
    full_index = load_index(full_cfg.index_dir, full_cfg).single()
    off_index = load_index(off_cfg.index_dir, off_cfg).single() if off_cfg is not None else None
    if dump is not None:  # the evidence, for fitting other models without asking again
        with open(dump, "w", encoding="utf-8") as f:
            for it in items:
                idx = off_index if it["kind"] == "offtopic" else full_index
                rows = [[r[0], r[1], r[2], r[3], r[4], r[5],
                         idx.article(int(idx.chunks[r[1]][0])).text[r[3]:r[4]]]
                        for r in it["ev"]]
                f.write(json.dumps({"id": it["q"]["id"], "kind": it["kind"],
                                    "article_id": it["q"]["article_id"],
                                    "golds": it["golds"], "labels": it["labels"],
                                    "ev": rows}) + "\n")

    def index_of(it):
        return off_index if it["kind"] == "offtopic" else full_index

    select = fit_selection(items)
    answerable = [it for it in items if it["kind"] == "answerable"]

    def hit_and_chars(its, w, widen=True, gap=None):
        variant = model.replace(select=w, widen=widen,
                                pair_gap=model.pair_gap if gap is None else gap)
        got = [choose(index_of(it), it, variant)[1] for it in its]
        hit = np.mean([metrics.contains_answer(g, it["golds"]) for g, it in zip(got, its)])
        return hit, np.mean([len(g) for g in got])

    print("sentence selection (answerable questions, no abstention): hit@1, mean chars")
    for name, w, widen, gap in (
            ("passage rank only (first sentence)", {"rank": 1.0}, False, 0),
            ("cos_s only", {"cos_s": 1.0}, False, 0),
            ("lex only", {"lex": 1.0, "cos_s": 1e-3}, False, 0),
            ("0.5 cos_s + 0.3 lex + 0.2 cos_p + 0.2 lex_p (hand)",
             {"cos_s": 0.5, "lex": 0.3, "cos_p": 0.2, "lex_p": 0.2}, False, 0),
            ("fitted now, one sentence", select, False, 0),
            ("shipped SELECT, one sentence", model.select, False, 0),
            ("shipped SELECT + straddle widening", model.select, True, 0),
            *((f"shipped SELECT + widening + pair gap {g}", model.select, True, g)
              for g in (0.5, 1.0, 1.5, 2.0, 3.0))):
        hit, chars = hit_and_chars(answerable, w, widen, gap)
        print(f"  {name:55s} {hit:.3f}  {chars:.0f}")
    print("SELECT (fitted on all) =",
          {k: round(v, 2) for k, v in select.items()})
    folds = article_folds(answerable, 4)
    cv = []
    for f in range(4):
        train = [it for it, g in zip(answerable, folds) if g != f and it["ev"]]
        test = [it for it, g in zip(answerable, folds) if g == f]
        if train and test:
            cv.append((hit_and_chars(test, fit_selection(train), False, 0)[0], len(test)))
    if cv:
        print("article-wise 4-fold CV of the fitted selection (one sentence): hit@1 "
              f"{sum(h * n for h, n in cv) / sum(n for _, n in cv):.3f}")
    cal, feats, labels = fit_calibration(index_of, items, model)
    kinds = [it["kind"] for it in items]
    p = probabilities(cal, feats)
    t = pick_threshold(p, kinds)
    ans = np.array(kinds) == "answerable"
    print("CALIBRATION =", {k: round(v, 3) for k, v in cal.items()})
    print(f"abstain_threshold = {t:.2f}")
    print(f"in-sample: hit@1 {labels[ans].mean() if ans.any() else math.nan:.3f}; "
          f"abstained at {t:.2f}:",
          {k: round(v, 3) for k, v in shares(p, kinds, t).items()})
    # 2-fold cross-validation by article: fit on one half, measure on the other
    fold = article_folds(items, 2)
    for f in (0, 1):
        train = [it for it, g in zip(items, fold) if g != f]
        test = [it for it, g in zip(items, fold) if g == f]
        if not train or not test:
            continue
        c, trf, _ = fit_calibration(index_of, train, model)
        tf, tl = quote_features(index_of, test, model)
        tt = pick_threshold(probabilities(c, trf), [it["kind"] for it in train])
        tk = [it["kind"] for it in test]
        tans = np.array(tk) == "answerable"
        hit = f"{tl[tans].mean():.3f}" if tans.any() else "-"
        print(f"fold {f}: test hit@1 {hit}; threshold {tt:.2f} abstains",
              {k: round(v, 3) for k, v in shares(probabilities(c, tf), tk, tt).items()})
    print_pipeline_cv(index_of, items, model)
    return model.replace(select={k: round(v, 2) for k, v in select.items()},
                         calibration={k: round(v, 3) for k, v in cal.items()},
                         threshold=round(t, 2))


def print_pipeline_cv(index_of, items: list[dict], model: AnswerModel, k: int = 4) -> None:
    """The whole answer pipeline, k-fold by article: selection weights, calibration and
    threshold fitted on the other folds' articles, measured on this fold's (the pair gap
    and widening stay as in ``model``): the honest estimate for new text of the same
    kind."""
    folds = article_folds(items, k)
    answered: list[float] = []
    abstained: dict[str, list[bool]] = {"answerable": [], "unanswerable": [], "offtopic": []}
    for f in range(k):
        train = [it for it, g in zip(items, folds) if g != f]
        test = [it for it, g in zip(items, folds) if g == f]
        if not train or not test:
            continue
        fold_model = model.replace(select=fit_selection(train))
        cal, train_feats, _ = fit_calibration(index_of, train, fold_model)
        t = pick_threshold(probabilities(cal, train_feats), [it["kind"] for it in train])
        feats, labels = quote_features(index_of, test, fold_model)
        for it, p, y in zip(test, probabilities(cal, feats), labels):
            abstained[it["kind"]].append(bool(p < t))
            if it["kind"] == "answerable" and p >= t:
                answered.append(float(y))
    print(f"whole pipeline, {k}-fold CV by article: hit@1 {metrics.mean(answered):.3f} of the "
          "answered; abstained", {kind: round(metrics.mean(v), 3)
                                  for kind, v in abstained.items()})
