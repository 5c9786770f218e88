"""Training pairs for readers' questions from ``shared/train/paragraphs.jsonl`` (issue 23).

A line of that file is one whole paragraph with its questions and answer offsets (SQuAD
v1.1 train, 440 articles; TyDi QA GoldP English, written before their authors saw the text;
two SQuAD 2.0 articles with 348 real unanswerable questions). The paragraph is cut into
sentences by the project's own splitter (:func:`rag.ingest.chunking.split_sentences`, what
the index holds), so training sees the sentences the pipeline scores; the selector reads
the sentence alone, as at question time.

Per question (records in the format of ``sentences.jsonl``: ``candidates`` and ``labels``,
plus ``kind``):

* ``answer``: the sentence(s) holding ``[start, start + len(answer))`` as the positive,
  and hard negatives: the sentences of the same paragraph, and of two other paragraphs of
  the same article, ranked by the share of the question's BM25 terms (IDF-weighted over
  the source's sentences, the index's own tokeniser) they contain: the sentences that
  share the question's words without answering, which is exactly what the SQuAD-trained
  selection confuses ("Who runs GlaxoSmithKline?" vs the profits sentence). The top
  ``hard`` plus one drawn at random from the rest. A sentence that contains the answer
  string elsewhere is never a negative (SQuAD's offsets are first occurrences).
* ``removed`` ("answer removed", all negative): a question that is not used as
  ``answer`` against the best-ranked sentences of its paragraph without the answering
  sentence, kept only when the answer string does not remain there: a same-topic "no
  answer" signal.
* ``impossible``: the 348 real SQuAD 2.0 unanswerable questions against the sentence of
  their crowdworker's plausible span and the best-ranked other sentences of the paragraph.
* ``offtopic``: a question against the best-ranked sentence of a paragraph of another,
  randomly drawn article.

TyDi questions are used whole and twice (``tydi_repeats``), each time with other
negatives; SQuAD questions are sampled (``squad_questions``), at most a share of each
article, so that all 440 articles are seen. Train and validation are split by ``group``
(article or TyDi passage), never by question, with :func:`rag.training.data.is_validation`.
Deterministic for a seed.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path

from .data import Pair, is_validation

DEFAULT_PARAGRAPHS = (Path(__file__).resolve().parents[2].parent / "shared" / "train"
                      / "paragraphs.jsonl")


def read_paragraphs(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    from rag.ingest.chunking import split_sentences

    return split_sentences(text)


def _source_key(source: str) -> str:
    return "tydi" if source.startswith("TyDi") else "squad"


def _overlap(q_terms: list[str], s_terms: set[str], idf: dict[str, float]) -> float:
    """The IDF-weighted share of the question's terms the sentence contains, [0, 1]."""
    total = sum(idf.get(t, 0.0) for t in q_terms)
    if not total:
        return 0.0
    return sum(idf.get(t, 0.0) for t in q_terms if t in s_terms) / total


class _Article:
    """The sentences of one group's paragraphs, tokenised once."""

    def __init__(self, paragraphs: list[dict]):
        from rag.index.keyword import keyword_tokens

        self.paragraphs = paragraphs
        self.sents: list[list[tuple[int, int, str, set]]] = []
        for p in paragraphs:
            text = p["context"]
            self.sents.append([(a, b, text[a:b], set(keyword_tokens(text[a:b])))
                               for a, b in sentence_spans(text)])


def _idf(articles: list[_Article]) -> dict[str, float]:
    df: Counter = Counter()
    n = 0
    for art in articles:
        for sents in art.sents:
            for *_, terms in sents:
                df.update(terms)
                n += 1
    return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}


def _ranked(q_terms, pool, idf, rnd: random.Random):
    """``pool`` sentences best first by lexical overlap (ties in random order)."""
    keyed = [(-_overlap(q_terms, s[3], idf), rnd.random(), i) for i, s in enumerate(pool)]
    return [pool[i] for *_, i in sorted(keyed)]


def build_records(paragraphs: list[dict], seed: int = 13, squad_questions: int = 12000,
                  hard: int = 3, tydi_repeats: int = 2, removed: int = 3000,
                  offtopic: int = 1500, other_paragraphs: int = 2,
                  log=None) -> list[dict]:
    """Records (``id``, ``source``, ``group``, ``question``, ``candidates``, ``labels``,
    ``kind``) as described in the module docstring, in a deterministic order."""
    from rag.index.keyword import keyword_tokens

    rnd = random.Random(seed)
    by_group: dict[str, list[dict]] = defaultdict(list)
    for p in paragraphs:
        by_group[p["group"]].append(p)
    groups = sorted(by_group)
    arts = {g: _Article(by_group[g]) for g in groups}
    idf = {k: _idf([arts[g] for g in groups if _source_key(by_group[g][0]["source"]) == k])
           for k in ("squad", "tydi")}
    if log:
        print(f"{len(groups)} groups tokenised", file=log, flush=True)

    # which SQuAD questions give answer records, and which give answer-removed ones
    squad_qs = [(g, pi, qi) for g in groups if by_group[g][0]["source"].startswith("SQuAD v1.1")
                for pi, p in enumerate(by_group[g]) for qi, _ in enumerate(p["qas"])]
    per_group: dict[str, list] = defaultdict(list)
    for key in squad_qs:
        per_group[key[0]].append(key)
    share = min(1.0, squad_questions / max(1, len(squad_qs)))
    answer_keys, rest = set(), []
    for g in sorted(per_group):
        keys = per_group[g]
        rnd.shuffle(keys)
        n = max(1, round(share * len(keys)))
        answer_keys.update(keys[:n])
        rest += keys[n:]
    rnd.shuffle(rest)
    removed_keys = set(rest[:removed])

    out: list[dict] = []

    def record(kind, rid, p, question, cands, labels):
        out.append({"id": rid, "source": p["source"], "group": p["group"], "question": question,
                    "candidates": cands, "labels": labels, "kind": kind})

    for g in groups:
        art, ps = arts[g], by_group[g]
        k = _source_key(ps[0]["source"])
        for pi, p in enumerate(ps):
            sents = art.sents[pi]
            others = [j for j in range(len(ps)) if j != pi]
            for qi, qa in enumerate(p["qas"]):
                q = qa["question"]
                q_terms = list(keyword_tokens(q))
                if qa.get("is_impossible"):
                    plaus = [(a["start"], a["start"] + len(a["text"]))
                             for a in qa.get("plausible_answers") or [] if "start" in a]
                    near = [s for s in sents if any(s[0] < e and s[1] > b for b, e in plaus)]
                    ranked = near + [s for s in _ranked(q_terms, sents, idf[k], rnd)
                                     if s not in near]
                    cands = [s[2] for s in ranked[:hard + 1]]
                    if cands:
                        record("impossible", qa["id"], p, q, cands, [0] * len(cands))
                    continue
                if k == "squad" and (g, pi, qi) not in answer_keys | removed_keys:
                    continue
                ans = qa["answers"][0]
                a0, a1 = ans["start"], ans["start"] + len(ans["text"])
                low = ans["text"].lower()
                pos = [s for s in sents if s[0] < a1 and s[1] > a0]
                if not pos:
                    continue
                pool = [s for s in sents if s not in pos and low not in s[2].lower()]
                if k == "squad" and (g, pi, qi) in removed_keys:
                    cands = [s[2] for s in _ranked(q_terms, pool, idf[k], rnd)[:2]]
                    if cands and len(pool) == len(sents) - len(pos):  # the answer is gone
                        record("removed", qa["id"] + "~removed", p, q, cands, [0] * len(cands))
                    continue
                far = []
                for j in rnd.sample(others, min(other_paragraphs, len(others))):
                    far += [s for s in art.sents[j] if low not in s[2].lower()]
                positive = p["context"][pos[0][0]:pos[-1][1]]
                ranked = _ranked(q_terms, pool + far, idf[k], rnd)
                for rep in range(tydi_repeats if k == "tydi" else 1):
                    negs = ranked[rep * hard:(rep + 1) * hard]
                    left = ranked[(rep + 1) * hard:]
                    if left:
                        negs.append(rnd.choice(left))
                    if rep and not negs:
                        break
                    cands = [positive] + [s[2] for s in negs]
                    record("answer", qa["id"] + (f"~{rep}" if rep else ""), p, q, cands,
                           [1] + [0] * len(negs))

    # off-topic: a question against the best sentence of another article's paragraph
    answered = [r for r in out if r["kind"] == "answer"]
    for r in rnd.sample(answered, min(offtopic, len(answered))):
        g = rnd.choice(groups)
        if g == r["group"]:
            continue
        art = arts[g]
        sents = art.sents[rnd.randrange(len(art.sents))]
        if not sents:
            continue
        k = _source_key(by_group[g][0]["source"])
        best = _ranked(list(keyword_tokens(r["question"])), sents, idf[k], rnd)[0]
        out.append({"id": r["id"] + "~offtopic", "source": r["source"], "group": r["group"],
                    "question": r["question"], "candidates": [best[2]], "labels": [0],
                    "kind": "offtopic"})
    return out


def split_records(records: list[dict]) -> tuple[list[dict], list[dict]]:
    return ([r for r in records if not is_validation(r["group"])],
            [r for r in records if is_validation(r["group"])])


def record_pairs(records: list[dict], seed: int) -> list[Pair]:
    """Every candidate of every record as a pair, no context (the pipeline reads the
    sentence alone), shuffled deterministically."""
    out = [Pair(r["question"], c, "", int(y), r["id"])
           for r in records for c, y in zip(r["candidates"], r["labels"])]
    random.Random(seed).shuffle(out)
    return out


def counts(records: list[dict]) -> dict:
    c: Counter = Counter()
    for r in records:
        c[f"{_source_key(r['source'])}/{r['kind']}"] += 1
        c["pairs"] += len(r["candidates"])
        c["positive"] += sum(r["labels"])
    return dict(sorted(c.items()))
