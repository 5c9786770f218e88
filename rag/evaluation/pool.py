"""Fitting the answer model on a pool of development sets, reported per source (issue 23).

``python -m rag.eval SET [SET ...] --fit`` asks every question of every set once, keeps the
evidence of each candidate sentence (with the selector's ``sel`` on the rows it read) and
its text (:func:`collect_set`; ``--out`` writes it, ``--from-evidence`` reads it back, so
that variants are fitted without asking again), then fits on the pool:

* selection: the conditional logit of :mod:`rag.evaluation.fit` over all answerable
  questions of the pool;
* calibration: the logistic regression over the chosen quotes of every question
  (answerable, unanswerable, off-topic), with the selector's log-odds ``sel`` and its
  margin over the runner-up ``sel_gap`` as features where the model reads them;
* threshold: the largest one at which answerable questions abstain on at most 5 % of
  *every* source (sources with fewer than ``MIN_SOURCE`` answerable questions are
  reported but do not bind), not on average.

Figures are article-wise 4-fold cross-validated (every set's articles are folded
together: a question is measured with weights fitted on other articles) and printed per
source: hit@1 of the answered, answerable / unanswerable / off-topic abstained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..answer import extract
from ..answer.params import CALIBRATION_FEATURES, AnswerModel
from ..answer.spans import depends_on_previous
from . import metrics
from .fit import article_folds, conditional_logit_fit, logistic_fit, MAX_WRONG_ABSTAIN

MIN_SOURCE = 30
SEL_CAL = ("sel", "sel_gap")


def collect_set(name: str, questions: list[dict], full_cfg, off_cfg, held: set[str],
                offtopic: list[dict], mode: str, model: AnswerModel) -> list[dict]:
    """Offline items for one set: every question with the evidence and text of its
    candidate sentences. Off-topic items are the held-out articles' questions asked
    without them, and ``offtopic`` questions (a set's ``offtopic.jsonl``) asked of the
    full index."""
    from ..index.live import load_index
    from .fit import collect

    out = []
    runs = [(questions, full_cfg, "answerable")]
    if off_cfg is not None and held:
        runs.append(([q for q in questions if q["article_id"] in held], off_cfg, "offtopic"))
    if offtopic:
        runs.append((offtopic, full_cfg, "offtopic"))
    for qs, cfg, kind in runs:
        if not qs:
            continue
        index = load_index(cfg.index_dir, cfg).single()
        for it in collect(qs, cfg, kind, mode, model):
            q = it["q"]
            k = "unanswerable" if kind == "answerable" and q.get("is_impossible") else kind
            rows = []
            for r in it["ev"]:
                art_row = int(index.chunks[r[1]][0])
                rows.append([r[0], r[1], r[2], r[3], r[4], r[5],
                             index.article(art_row).text[r[3]:r[4]], art_row])
            source = (q.get("source", name) if kind == "answerable" else
                      f"{name}: off-topic")
            out.append({"set": name, "source": source, "kind": k,
                        "q": {"id": q["id"], "article_id": f"{name}/{q['article_id']}",
                              "question": it["text"]},
                        "golds": [] if k != "answerable" else it["golds"],
                        "labels": it["labels"] if k == "answerable" else
                        [False] * len(rows), "ev": rows})
    return out


def write_items(path: Path, items: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")


def read_items(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    for it in items:
        it["ev"] = [tuple(r) for r in it["ev"]]
    return items


def rescore(items: list[dict], selector) -> list[dict]:
    """The items with ``sel`` recomputed by ``selector`` on the rows the shipped one read
    (which rows are read depends on the fast path's ``prerank`` only, not on the
    selector): measures another selector without asking again."""
    out = []
    for it in items:
        rows = [i for i, r in enumerate(it["ev"]) if "sel" in r[5]]
        ev = list(it["ev"])
        if rows:
            z = selector.logits(it["q"]["question"], [ev[i][6] for i in rows])
            for i, v in zip(rows, z):
                r = ev[i]
                feats = {k: x for k, x in r[5].items() if k != "sel_gap"}
                ev[i] = (*r[:5], {**feats, "sel": float(v)}, *r[6:])
        out.append({**it, "ev": ev})
    return out


def _ev(item: dict):
    """The evidence rows as :func:`rag.answer.extract.rank_candidates` reads them."""
    return [r[:6] for r in item["ev"]]


def quote(item: dict, cand) -> str:
    """The text of a candidate quote: its sentences, joined by a space, with the previous
    sentence of its passage when the first one depends on it (as the citations quote:
    :func:`rag.answer.spans.with_antecedent`)."""
    art = next((r[7] for r in item["ev"] if r[2] == cand.sentence), None)
    rows = sorted((r for r in item["ev"]
                   if r[7] == art and r[3] >= cand.start and r[4] <= cand.end),
                  key=lambda r: r[3])
    if rows and depends_on_previous(rows[0][6]):
        prev = next((r for r in item["ev"] if r[7] == art and r[1] == rows[0][1]
                     and r[2] == rows[0][2] - 1), None)
        rows = [prev, *rows] if prev is not None else rows
    return " ".join(r[6] for r in rows)


def chosen(item: dict, model: AnswerModel) -> tuple[dict, str]:
    cands = extract.rank_candidates(_ev(item), model)
    if not cands:
        return {}, ""
    return cands[0].features, quote(item, cands[0])


def selection_names(model: AnswerModel) -> tuple[str, ...]:
    from ..answer.params import SELECTION_FEATURES

    return SELECTION_FEATURES + (("sel",) if model.rescore else ())


def fit_selection(items: list[dict], names: tuple[str, ...]) -> dict:
    groups = []
    for it in items:
        if it["kind"] != "answerable":
            continue
        rows = [(r[5], y) for r, y in zip(it["ev"], it["labels"])
                if "sel" not in names or "sel" in r[5]]
        if rows:
            groups.append((np.array([[f.get(k, 0.0) for k in names] for f, _ in rows]),
                           np.array([y for _, y in rows], dtype=bool)))
    w = conditional_logit_fit(groups) if groups else np.zeros(len(names))
    return {k: round(float(v), 3) for k, v in zip(names, w)}


def quote_table(items: list[dict], model: AnswerModel, cal_names: tuple[str, ...]
                ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    feats, hits, lengths = [], [], []
    for it in items:
        f, text = chosen(it, model)
        feats.append([float(f.get(k, 0.0)) for k in cal_names])
        hits.append(float(bool(it["golds"]) and metrics.contains_answer(text, it["golds"]) > 0))
        lengths.append(len(text))
    return (np.array(feats).reshape(len(items), len(cal_names)), np.array(hits), lengths)


def fit_calibration(feats: np.ndarray, hits: np.ndarray, cal_names: tuple[str, ...],
                    weights: np.ndarray | None = None) -> dict:
    beta = logistic_fit(feats, hits, weights)
    return {"bias": round(float(beta[0]), 3),
            **{k: round(float(b), 3) for k, b in zip(cal_names, beta[1:])}}


def probabilities(cal: dict, feats: np.ndarray, cal_names: tuple[str, ...]) -> np.ndarray:
    z = cal["bias"] + feats @ np.array([cal[k] for k in cal_names])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def threshold_every_source(p: np.ndarray, items: list[dict],
                           max_wrong: float = MAX_WRONG_ABSTAIN) -> float:
    """The largest threshold (rounded down to 0.01) at which the answerable questions of
    every source with at least ``MIN_SOURCE`` of them abstain on at most ``max_wrong``."""
    t = 1.0
    by: dict[str, list[float]] = {}
    for pi, it in zip(p, items):
        if it["kind"] == "answerable":
            by.setdefault(it["source"], []).append(float(pi))
    for src, ps in by.items():
        if len(ps) < MIN_SOURCE:
            continue
        ps = sorted(ps)
        t = min(t, ps[int(math.floor(max_wrong * len(ps)))])
    return math.floor(t * 100) / 100


def figures(items: list[dict], abstained: list[bool], hits: np.ndarray,
            lengths: list[int]) -> dict:
    """Per source (and per set's off-topic questions): n, hit@1 of the answered,
    hit@1 counting abstentions as misses, and the abstained shares."""
    out: dict[str, dict] = {}
    keys = sorted({it["source"] for it in items})
    for src in keys:
        idx = [i for i, it in enumerate(items) if it["source"] == src]
        ans = [i for i in idx if items[i]["kind"] == "answerable"]
        answered = [i for i in ans if not abstained[i]]
        row = {"n": len(idx)}
        if ans:
            row["hit@1"] = metrics.mean(hits[i] for i in answered)
            row["hit@1_all"] = metrics.mean(hits[i] if not abstained[i] else 0.0 for i in ans)
            row["chars"] = metrics.mean(lengths[i] for i in answered)
        for kind in ("answerable", "unanswerable", "offtopic"):
            ks = [i for i in idx if items[i]["kind"] == kind]
            if ks:
                row[f"{kind}_abstained"] = metrics.mean(abstained[i] for i in ks)
        out[src] = row
    return out


def fit_pool(items: list[dict], model: AnswerModel, cal_names: tuple[str, ...],
             refit_selection: bool = True) -> AnswerModel:
    """A new answer model fitted on ``items`` (selection, calibration, threshold)."""
    if refit_selection:
        model = model.replace(select=fit_selection(items, selection_names(model)))
    feats, hits, _ = quote_table(items, model, cal_names)
    cal = fit_calibration(feats, hits, cal_names)
    t = threshold_every_source(probabilities(cal, feats, cal_names), items)
    return model.replace(calibration=cal, threshold=t)


def evaluate(items: list[dict], model: AnswerModel) -> dict:
    """Figures of ``model`` as it stands (in-sample when fitted on ``items``)."""
    names = tuple(k for k in model.calibration if k != "bias")
    feats, hits, lengths = quote_table(items, model, names)
    p = probabilities(dict(model.calibration), feats, names)
    return figures(items, [bool(x < model.threshold) for x in p], hits, lengths)


def cross_validate(items: list[dict], model: AnswerModel, cal_names: tuple[str, ...],
                   refit_selection: bool = True, k: int = 4) -> dict:
    """Article-wise k-fold CV of :func:`fit_pool`: per source figures."""
    folds = article_folds(items, k)
    abstained = [False] * len(items)
    hits = np.zeros(len(items))
    lengths = [0] * len(items)
    thresholds = []
    for f in range(k):
        train = [it for it, g in zip(items, folds) if g != f]
        test = [i for i, g in enumerate(folds) if g == f]
        if not train or not test:
            continue
        m = fit_pool(train, model, cal_names, refit_selection)
        thresholds.append(m.threshold)
        feats, h, ls = quote_table([items[i] for i in test], m, cal_names)
        p = probabilities(dict(m.calibration), feats, cal_names)
        for j, i in enumerate(test):
            abstained[i], hits[i], lengths[i] = bool(p[j] < m.threshold), h[j], ls[j]
    out = figures(items, abstained, hits, lengths)
    out["_thresholds"] = thresholds
    return out


COLS = (("n", "n", "{:d}"), ("hit@1", "hit@1", "{:.3f}"), ("hit@1all", "hit@1_all", "{:.3f}"),
        ("chars", "chars", "{:.0f}"), ("ans.abst", "answerable_abstained", "{:.3f}"),
        ("unans.abst", "unanswerable_abstained", "{:.3f}"),
        ("off.abst", "offtopic_abstained", "{:.3f}"))


def format_figures(columns: dict[str, dict]) -> str:
    """Side by side: one block of columns per variant, one line per source."""
    sources = sorted({s for fig in columns.values() for s in fig if not s.startswith("_")})
    head = ["source"] + [f"{name} {c[0]}" for name in columns for c in COLS[1:]]
    lines = [head]
    for src in sources:
        row = [f"{src} ({max(fig.get(src, {}).get('n', 0) for fig in columns.values())})"]
        for fig in columns.values():
            s = fig.get(src, {})
            for _, key, fmt in COLS[1:]:
                v = s.get(key)
                row.append("-" if v is None or (isinstance(v, float) and math.isnan(v))
                           else fmt.format(v))
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in lines)


def calibration_names(model: AnswerModel, with_selector: bool = True) -> tuple[str, ...]:
    return CALIBRATION_FEATURES + (SEL_CAL if model.rescore and with_selector else ())


def fit_and_report(items: list[dict], sel_model: AnswerModel, fast_model: AnswerModel,
                   save: bool = False, log=print) -> dict[str, AnswerModel]:
    """Both paths: the shipped models as they stand, and refitted on the pool (with and
    without the selector's features in the confidence), article-wise 4-fold CV, per
    source. With ``save``, the refitted models are written to their params files (the
    selector's with ``sel`` and ``sel_gap`` in the confidence)."""
    cols: dict[str, dict] = {}
    fitted: dict[str, AnswerModel] = {}
    for path, model in (("selector", sel_model), ("fast", fast_model)):
        cols[f"{path} shipped"] = evaluate(items, model)
        names = calibration_names(model, with_selector=False)
        cols[f"{path} refit CV"] = cross_validate(items, model, names)
        fitted[path] = fit_pool(items, model, names)
        if model.rescore:
            names = calibration_names(model)
            cols[f"{path} refit+sel CV"] = cross_validate(items, model, names)
            fitted[path] = fit_pool(items, model, names)
    for name, fig in cols.items():
        if "_thresholds" in fig:
            log(f"{name}: fold thresholds {fig['_thresholds']}")
    for path in ("selector", "fast"):
        log(f"\n{path} path (hit@1 of the answered; abstained shares):")
        log(format_figures({k.split(' ', 1)[1]: v for k, v in cols.items()
                            if k.startswith(path)}))
        m = fitted[path]
        log(f"{path} refit on the whole pool: SELECT = {dict(m.select)}")
        log(f"  CALIBRATION = {dict(m.calibration)}, threshold {m.threshold}")
    if save:
        for m in fitted.values():
            m.save()
            log(f"written to {m.params_file}")
    return fitted
