"""Passages -> the sentence that answers, its confidence, and the numbered citations.

Every sentence of the candidate passages is described by a few pieces of evidence
(:data:`FEATURES`), all cheap to compute at question time (no model call: the sentence
vectors were computed at build time; tokens come from a cached tokeniser). Question
terms are the BM25 terms of the question minus the words that only shape it (who, how
much...; see :mod:`rag.answer.question`):

* ``cos_s``: cosine of the question and the sentence's own vector (late-chunked, so it
  reads the sentence in the context of its passage), in [-1, 1];
* ``cos_p``: cosine of the question and the whole passage, in [-1, 1];
* ``lex``: the share of the question's terms, weighted by their BM25 inverse document
  frequency, that the sentence contains (names, numbers and rare words weigh most), [0, 1];
* ``lex_p``: the same share over the whole passage, [0, 1];
* ``lex_c``, ``lex_cp``: the same two shares with each term's weight discounted when the
  word is common in English (:mod:`rag.answer.terms`: a reader's "say" or "call" counts
  less than the names in the question, whatever the folder's size), [0, 1];
* ``miss_p``: the inverse document frequency of the most specific question term that the
  passage does not contain, divided by the largest possible one, [0, 1]: a question about
  a name, number or rare word the passage never mentions is probably not answered there;
* ``rank``: ``1 / (1 + r)`` for the passage's retrieval rank ``r`` (0 = best), (0, 1];
* ``type_miss``: 1 when the question asks for a kind of answer (an amount of money for
  *how much ... cost*, a date for *when / what year*, a count for *how many*, another
  number for *how long / what percentage*, a name for *who*, a game's score such as
  "6-3" for *what was the score*, a meaning for *what does X mean*) and the sentence
  holds none that the question does not already contain, else 0. A sentence that merely
  repeats the question cannot answer it.

Selection: the sentence with the highest score ``select . features`` is the answer (the
weights and the other fitted constants are the :class:`~rag.answer.params.AnswerModel` passed
in). The weights are a conditional logit fitted on the development set (``python -m rag.eval
--fit``): the softmax of the scores over all candidate sentences of a question is the
probability that each one holds the answer. Two widenings keep the quote honest when one
sentence is not enough: when the runner-up is the best sentence's neighbour and nearly as
likely (within ``pair_gap``), the quote spans both; otherwise, when the chosen
sentence lacks the kind of answer asked for and its neighbour in the same passage has it,
the quote spans both (the answer straddles two sentences). Each citation's quote is then
completed to whole sentences where a passage boundary cut it and takes in the sentence
before when it opens with a reference back ("They said...": :mod:`rag.answer.spans`). A
title or section heading (:func:`is_heading`), and a fragment that asks or has under
three words (:func:`is_fragment`: a reader comment's "Veritas?"), is never the answer
while a sentence is on offer.

Confidence: ``answer.score`` is ``1 / (1 + exp(-(calibration . features)))`` of the chosen
quote, a probability-like value in [0, 1] that the quote answers the question (fitted
by logistic regression of "the quote contains a gold answer" on answerable, unanswerable
and off-topic questions of the development set). Below the model's ``threshold`` (or
``Config.abstain_threshold``) the system abstains.

Everything here is a pure function of an immutable index: thread-safe.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..index.keyword import keyword_tokens
from ..types import Citation, Copy
from .params import FEATURES, AnswerModel
from .question import answer_type, has_type, is_fragment, is_heading, question_terms
from .corpus import View
from .search import Hit
from .spans import whole_sentences, with_antecedent
from .terms import term_weights

@dataclass(frozen=True)
class Candidate:
    """One sentence (or two neighbouring ones) of a retrieved passage, with its evidence.

    ``start``/``end`` are offsets in the article text. ``score`` is the selection score
    (log-odds scale, unbounded; see ``AnswerModel.select``); ``features`` holds
:data:`~rag.answer.params.FEATURES`.
    """

    hit_rank: int
    chunk: int
    sentence: int  # row in index.sentences
    start: int
    end: int
    score: float
    features: dict

    def __getattr__(self, name):  # c.cos_s etc.
        feats = self.__dict__.get("features")
        if feats is not None and name in feats:
            return feats[name]
        raise AttributeError(name)


# -- evidence -----------------------------------------------------------------

def _tokenize_all(texts: list[str], analyzers: list[str]) -> list[list[str]]:
    """The BM25 terms of each text under its analyzer (stemmed, no stop words): for
    English the same terms as ``bm25s.tokenize``, without its per-call set-up (~17 ms
    for 90 sentences -> ~2 ms)."""
    return [keyword_tokens(t, a) for t, a in zip(texts, analyzers)]


def _asked(index: View, question: str, analyzer: str) -> tuple:
    """(terms, idf, their total, common-word-discounted weights, their total): the
    question's content terms under one analyzer and their weights."""
    terms = question_terms(question, keyword_tokens(question, analyzer), analyzer)
    idf = index.idf(terms)
    core = term_weights(idf)  # common words of its language discounted (answer/terms.py)
    return terms, idf, sum(idf.values()) or 1.0, core, sum(core.values()) or 1.0


def sentence_evidence(index: View, question: str, qvec: np.ndarray, hits: list[Hit]
                      ) -> list[tuple[int, int, int, int, int, dict]]:
    """(hit rank, chunk, sentence row, start, end, features) of every distinct sentence
    of the hit passages, in passage order."""
    rows = []  # (rank, chunk, sentence row, start, end, article row)
    seen: dict[tuple[int, int, int], int] = {}  # sentence -> its row in ``rows``
    shared: list[tuple[int, int]] = []  # (chunk, row in ``rows``) of repeated sentences
    for rank, hit in enumerate(hits):
        art, _, _, s_lo, s_hi = (int(x) for x in index.chunks[hit.chunk])
        for j, (a, b) in enumerate(index.sentences[s_lo:s_hi].tolist()):
            if (art, a, b) in seen:  # the same sentence in an overlapping passage:
                shared.append((hit.chunk, seen[art, a, b]))  # scored once, counted in both
                continue
            seen[art, a, b] = len(rows)
            rows.append((rank, hit.chunk, s_lo + j, a, b, art))
    if not rows:
        return []
    articles = {r[5]: index.article(r[5]).text for r in rows}
    analyzer = {r[5]: index.analyzer(r[5]) for r in rows}  # each sentence is matched
    asked = {a: _asked(index, question, a)  # with the question under its analyzer
             for a in dict.fromkeys(analyzer.values())}
    texts = [articles[r[5]][r[3]:r[4]] for r in rows]
    present = [set(t) for t in _tokenize_all(texts, [analyzer[r[5]] for r in rows])]
    n = max(index.n_chunks, 1)
    top_idf = math.log(1 + (n + 0.5) / 0.5)
    sv = np.asarray(index.sentence_vectors[[r[2] for r in rows]], dtype=np.float32)
    cos = sv @ np.asarray(qvec, dtype=np.float32)
    per_chunk: dict[int, set] = {}
    for r, p in zip(rows, present):
        per_chunk.setdefault(r[1], set()).update(p)
    for chunk, i in shared:
        per_chunk.setdefault(chunk, set()).update(present[i])
    kind = answer_type(question)
    q_lower = question.lower()
    out = []
    for i, r in enumerate(rows):
        in_passage = per_chunk[r[1]]
        terms, idf, total, core, core_total = asked[analyzer[r[5]]]
        miss = max((idf[t] for t in terms if t not in in_passage), default=0.0)
        feats = {"cos_s": float(cos[i]), "cos_p": hits[r[0]].dense,
                 "lex": _share(terms, idf, total, present[i]),
                 "lex_p": _share(terms, idf, total, in_passage),
                 "lex_c": _share(terms, core, core_total, present[i]),
                 "lex_cp": _share(terms, core, core_total, in_passage),
                 "miss_p": miss / top_idf, "rank": 1.0 / (1.0 + r[0]),
                 "type_miss": 0.0 if has_type(kind, texts[i], q_lower) else 1.0,
                 "heading": 1.0 if is_heading(articles[r[5]], r[3], r[4])
                 or is_fragment(articles[r[5]], r[3], r[4]) else 0.0}
        out.append((r[0], r[1], r[2], r[3], r[4], feats))
    return out


def _share(terms: list[str], weights: dict[str, float], total: float, held: set) -> float:
    """The weighted share of the question's ``terms`` that ``held`` contains, [0, 1]."""
    return sum(weights[t] for t in terms if t in held) / total if terms else 0.0


def score_sentences(index: View, question: str, qvec: np.ndarray, hits: list[Hit],
                    model: AnswerModel, selector=None, k: int = 5) -> list[Candidate]:
    """Every sentence of the hit passages with its evidence, best first. The first
    candidate may be widened to a neighbouring sentence (see the module docstring). With
    a ``selector`` and a model that rescores, the best sentences are read by the selector
    first (:func:`add_selector_scores`)."""
    ev = sentence_evidence(index, question, qvec, hits)
    if selector is not None and model.rescore:
        ev = add_selector_scores(index, question, ev, model, selector, k)
    return rank_candidates(ev, model)


def add_selector_scores(index: View, question: str, ev, model: AnswerModel, selector, k: int):
    """``ev`` with the feature ``sel`` (the selector's log-odds that the sentence answers)
    on the ``model.rescore`` best rows by ``model.prerank_score`` and on the best row of
    each of the first ``k`` passages in that order (so every citation is rescored), all
    read in one batch. Headings are not read. The selector reads the sentence alone: the
    title and previous sentence it was also trained with lowered its one-sentence hit@1 on
    the development set (0.703 vs 0.728 over the top 20) and cost 2.9x the time."""
    order = sorted((i for i, r in enumerate(ev) if not r[5].get("heading")),
                   key=lambda i: (-model.prerank_score(ev[i][5]), ev[i][0], ev[i][3]))
    pick = dict.fromkeys(order[:model.rescore])
    chunks: set[int] = set()
    for i in order:
        if len(chunks) >= k:
            break
        if ev[i][1] not in chunks:
            chunks.add(ev[i][1])
            pick.setdefault(i)
    if not pick:
        return ev
    rows = list(pick)
    texts = [index.article(int(index.chunks[ev[i][1]][0])).text[ev[i][3]:ev[i][4]]
             for i in rows]
    logits = selector.logits(question, texts)
    out = list(ev)
    for i, z in zip(rows, logits):
        out[i] = (*ev[i][:5], {**ev[i][5], "sel": float(z)})
    return out


def with_selector_gap(ev):
    """``ev`` with ``sel_gap`` on every row the selector read: its ``sel`` minus the best
    ``sel`` among the other rows read (how far the selector prefers this sentence to the
    runner-up; negative when another sentence is preferred). A question whose best
    sentence stands out is more likely answered by it than one where several sentences
    are alike (issue 23: a feature of the confidence)."""
    read = [(i, r[5]["sel"]) for i, r in enumerate(ev) if "sel" in r[5]]
    if not read:
        return ev
    top = sorted(read, key=lambda t: -t[1])[:2]
    out = list(ev)
    for i, z in read:
        other = top[1][1] if i == top[0][0] and len(top) > 1 else \
            top[0][1] if i != top[0][0] else z
        out[i] = (*ev[i][:5], {**ev[i][5], "sel_gap": float(z - other)})
    return out


def rank_candidates(ev, model: AnswerModel) -> list[Candidate]:
    """Candidates from :func:`sentence_evidence` rows, best first; the first may be
    widened to a neighbouring sentence (see :func:`_pair` and :func:`_widen`)."""
    ev = with_selector_gap(ev)
    out = [Candidate(rank, chunk, srow, a, b, model.selection_score(f), f)
           for rank, chunk, srow, a, b, f in ev]
    # headings last: a quote should state something (see is_heading); with the selector,
    # the sentences it read come first (their scores weigh its evidence)
    out.sort(key=lambda c: (c.features.get("heading", 0.0),
                            bool(model.rescore) and "sel" not in c.features,
                            -c.score, c.hit_rank, c.start))
    if not out:
        return out
    out[0] = _pair(out[0], out, model.pair_gap) or _widen(out[0], ev, model.widen)
    return out


def _pair(best: Candidate, ranked: list[Candidate], pair_gap: float) -> Candidate | None:
    """``best`` spanning the runner-up too when the runner-up is its neighbour in the same
    passage and nearly as likely (its selection score within ``pair_gap``): the
    evidence is split between two adjacent sentences, so quote both rather than guess."""
    if len(ranked) < 2 or pair_gap <= 0:
        return None
    second = ranked[1]
    if (second.chunk != best.chunk or abs(second.sentence - best.sentence) != 1
            or best.score - second.score > pair_gap or second.features.get("heading")
            or ("sel" in best.features) != ("sel" in second.features)):
        return None
    feats = {k: max(best.features[k], second.features[k]) for k in best.features}
    feats["type_miss"] = min(best.features["type_miss"], second.features["type_miss"])
    return Candidate(best.hit_rank, best.chunk, best.sentence, min(best.start, second.start),
                     max(best.end, second.end), best.score, feats)


def _widen(best: Candidate, ev, widen: bool = True) -> Candidate:
    """``best`` spanning its neighbour too when it lacks the kind of answer asked for and
    the neighbour (next first, then previous) in the same passage has it."""
    if not widen or best.features["type_miss"] == 0.0:
        return best
    for step in (1, -1):
        row = best.sentence + step
        for rank, chunk, srow, a, b, f in ev:
            if (srow == row and chunk == best.chunk and f["type_miss"] == 0.0
                    and not f.get("heading")):
                start, end = min(a, best.start), max(b, best.end)
                return Candidate(best.hit_rank, best.chunk, best.sentence, start, end,
                                 best.score, {**best.features, "type_miss": 0.0})
    return best


# A list item: a bullet (- * • ‣ ◦ ▪ –) or a number or letter with "." or ")", then text.
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*\u2022\u2023\u25e6\u25aa\u2013]|\(?(?:\d{1,2}|[a-z])[.)])"
                        r"[ \t]+\S")
LIST_MAX_ITEMS, LIST_MAX_CHARS = 20, 2000


def carry_list(text: str, start: int, end: int) -> int:
    """The end of the quote ``text[start:end]`` taking in the list it introduces: when
    the quote ends with ":" and the rest of its line is blank, the list items on the
    following lines (bullets or numbers; blank lines between items allowed) up to the
    first other line, at most :data:`LIST_MAX_ITEMS` items and :data:`LIST_MAX_CHARS`
    characters. ``end`` when it introduces none. ``text[start:result]`` stays verbatim."""
    if not text[start:end].rstrip().endswith(":"):
        return end
    line_end = text.find("\n", end)
    if line_end == -1 or text[end:line_end].strip():
        return end
    new_end, pos, items = end, line_end + 1, 0
    while pos < len(text) and items < LIST_MAX_ITEMS:
        nl = text.find("\n", pos)
        nl = len(text) if nl == -1 else nl
        line = text[pos:nl]
        if line.strip():
            if not _LIST_ITEM.match(line) or nl - start > LIST_MAX_CHARS:
                break
            new_end, items = pos + len(line.rstrip()), items + 1
        pos = nl + 1
    return new_end


# Citations after the first: an article's first REPEAT_FREE passages count at their own
# confidence, each further one REPEAT_FACTOR times less per extra citation, so another
# article's best passage comes first unless it is far less confident (issue 24, item 3:
# "4 of 5 citations from one article"). The cost, measured on ../eval-news (244
# questions over 120 stories; python -m rag.eval ../shared/eval-news): citations holding
# the answer (R@5) 0.985 without the rule, 0.969 with it (3 free), 0.954 with 2 free,
# 0.918 with none free; a flat 0.15 penalty gave 0.928. hit@1 is unchanged (0.277).
REPEAT_FACTOR = 0.5
REPEAT_FREE = 3


def make_citations(index: View, candidates: list[Candidate], k: int, answered: bool,
                   model: AnswerModel, threshold: float) -> list[Citation]:
    """Up to ``k`` citations, one per passage, each quoting that passage's best sentence.
    Citation 1 is the best candidate (it holds the answer); the others follow by falling
    ``score``; past an article's first :data:`REPEAT_FREE` citations each further passage
    of it counts :data:`REPEAT_FACTOR` times less per citation (other articles first unless
    they are far less confident). A citation's ``score`` is the model's confidence in its
    own quote (the first one's equals ``answer.score``); ``answers`` is True only when the
    answer was ``answered`` and that citation's own ``score`` reaches ``threshold``.

    Syndicated copies (articles the build found to hold the same story,
    ``index.copies``) are quoted once: a passage of a copy is skipped once another
    article of its group is cited, and the citation lists the group's other articles in
    ``also_in``. Citations carry the quote's ``page`` where the article has pages."""
    best_per_chunk: dict[int, Candidate] = {}
    for c in candidates:  # already best first
        best_per_chunk.setdefault(c.chunk, c)
    copies: dict[int, tuple[int, ...]] = getattr(index, "copies", None) or {}
    pool = [(c, int(index.chunks[c.chunk][0]), model.confidence(c.features))
            for c in best_per_chunk.values()]
    chosen = _diverse(pool, k, copies)
    cites = []
    for n, (c, row, score) in enumerate(chosen, 1):
        p_start, p_end = (int(x) for x in index.chunks[c.chunk][1:3])
        art = index.article(row)
        start, end = quote_span(index, art.text, c)
        p_start, p_end = min(p_start, start), max(p_end, end)
        cites.append(Citation(
            n=n, article_id=art.id, title=art.title, source=art.source, start=start,
            end=end, quote=art.text[start:end], passage=art.text[p_start:p_end],
            passage_start=p_start, passage_end=p_end, score=round(score, 4),
            url=art.url, published=art.published, answers=answered and score >= threshold,
            author=art.author, page=art.page_at(start), file_date=art.file_date,
            date_source=art.date_source,
            also_in=tuple(_copy(index.article(r)) for r in copies.get(row, ()) if r != row)))
    return cites


def quote_span(index: View, text: str, c: Candidate) -> tuple[int, int]:
    """The offsets of ``c``'s quote in its article ``text``: completed to whole sentences
    where a passage boundary cut it, with the previous sentence of the passage when it
    opens with a reference back (:mod:`rag.answer.spans`), and with the list it introduces
    (:func:`carry_list`)."""
    p_start, p_end, s_lo, s_hi = (int(x) for x in index.chunks[c.chunk][1:5])
    start, end = whole_sentences(text, c.start, c.end, (p_start, p_end))
    before = with_antecedent(text, start, end, p_start, index.sentences[s_lo:s_hi].tolist())
    if before < start:  # the passage's first sentence may itself be cut: complete it too
        start = whole_sentences(text, before, end, (p_start, p_end))[0]
    return start, carry_list(text, start, end)


def _diverse(pool: list[tuple[Candidate, int, float]], k: int,
             copies: dict[int, tuple[int, ...]]) -> list[tuple[Candidate, int, float]]:
    """The first of ``pool`` (candidate, article row, confidence; best first), then up to
    ``k - 1`` more by confidence, times :data:`REPEAT_FACTOR` per citation of the same
    article beyond its first :data:`REPEAT_FREE`, shown by falling confidence; one article
    per copy group.
    Deterministic: ties keep ``pool``'s order."""
    if not pool:
        return []
    chosen, cited, groups = [pool[0]], {pool[0][1]: 1}, {}
    first_group = copies.get(pool[0][1])
    if first_group:
        groups[first_group[0]] = pool[0][1]
    rest = list(enumerate(pool[1:]))
    while len(chosen) < k and rest:
        rest = [(i, e) for i, e in rest
                if not copies.get(e[1]) or groups.get(copies[e[1]][0], e[1]) == e[1]]
        if not rest:
            break
        i, pick = max(rest, key=lambda t: (
            t[1][2] * REPEAT_FACTOR ** max(0, cited.get(t[1][1], 0) - REPEAT_FREE + 1), -t[0]))
        rest = [(j, e) for j, e in rest if j != i]
        chosen.append(pick)
        cited[pick[1]] = cited.get(pick[1], 0) + 1
        if copies.get(pick[1]):
            groups.setdefault(copies[pick[1]][0], pick[1])
    return chosen[:1] + sorted(chosen[1:], key=lambda e: -e[2])


def _copy(art) -> Copy:
    return Copy(article_id=art.id, title=art.title, source=art.source, url=art.url,
                published=art.published)
