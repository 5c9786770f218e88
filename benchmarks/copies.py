"""Syndicated-copy detection (:mod:`rag.index.copies`): ``python -m benchmarks.copies``.

Corpus: ``../shared/corpus/news/articles.jsonl`` (2,225 BBC articles, 2004-2005), exact
duplicate bodies dropped as the loader drops them (2,092 left). Into it go:

* MADE copies of a seeded sample of articles (``--sample``, default 300), one of each kind,
  each under a new headline: ``byline`` (an author line and a "LONDON (Reuters) -"
  dateline), ``trim`` (the last 20-40% of the words cut, at a sentence end: the BBC's
  paragraphs are uneven), ``footer`` ("Reporting by ...; Editing by ..." and a standards
  line), ``reflow`` (paragraphs merged, re-split and hard-wrapped), ``words`` (one word in
  60 replaced, at least 3) and ``all`` (every change at once: the usual syndicated copy).
  A copy is found when it folds into its original.
* HARD NEGATIVES: every pair of different BBC stories (one category folder holds one
  topic: match reports, market reports, follow-ups of one event), and MADE pairs
  (``--negatives``, default 200): two different stories of one category cut to a brief
  (their first paragraphs, at least 30 or 60 words), both ending with the same 60-word
  block: ``boiler-*`` one legal/"about us" block that every made negative carries (a
  publisher's standing footer), ``pair-*`` the opening of a third story, shared by that
  pair alone. Their originals leave the corpus, so any fold of theirs is false.
* The corpus's own near-duplicates, judged by reading them side by side (``SAME``: one
  story, edited, trimmed or extended; ``UPDATE``: a later story on the same event that
  reports new facts; ``DIFFERENT``). A fold of an UPDATE or DIFFERENT pair counts as
  false (precision first: a false fold hides a different story); a fold of an unjudged
  pair counts as false too and is printed.

Precision = right folds / all folds; recall = made copies folded into their original.
A grid of shingle sizes and both measures (Jaccard; containment = |A & B| / min(|A|, |B|))
over thresholds comes first, then per kind for the chosen shingle size and measure, then
the time of :func:`rag.index.copies.find_copies` on the 2,225 raw articles and on ~10k
(the corpus repeated with renamed words: distinct stories; and with made copies: every
story four or five times).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import textwrap
import time
from pathlib import Path

from rag.index import copies
from rag.types import Article

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "news" / "articles.jsonl"

KINDS = ("byline", "trim", "footer", "reflow", "words", "all")
NEG_KINDS = ("boiler-30", "boiler-60", "pair-30", "pair-60")

# The corpus's near-duplicate pairs (every pair with containment >= 0.45 of 5-word or
# 3-word shingles, and the LSH candidates above 0.3), judged by reading both texts side by side.
SAME = """
tech-048 tech-342  tech-022 tech-380  sport-432 sport-438  sport-332 sport-344
sport-181 sport-182  politics-067 politics-390  sport-444 sport-458
politics-043 politics-313  tech-095 tech-311  tech-155 tech-294  tech-286 tech-391
tech-234 tech-389  tech-212 tech-225  tech-049 tech-340  sport-289 sport-406
politics-226 politics-265  tech-064 tech-338  tech-219 tech-224  tech-045 tech-341
tech-032 tech-335  entertainment-079 entertainment-331  sport-425 sport-433
entertainment-102 entertainment-341  tech-009 tech-379  tech-019 tech-329
business-254 business-447  entertainment-179 entertainment-216
entertainment-142 entertainment-229  tech-043 tech-326  sport-424 sport-511
politics-077 politics-354  business-260 business-354  business-209 business-229
politics-088 politics-337  politics-111 politics-293
"""
UPDATE = """
politics-069 politics-312  sport-226 sport-232  politics-327 politics-328
entertainment-152 entertainment-163  tech-101 tech-123  tech-018 tech-190
tech-141 tech-173  business-138 business-152  entertainment-249 entertainment-251
business-010 business-291  politics-218 politics-252
"""
DIFFERENT = """
politics-374 politics-409  politics-081 politics-141  politics-225 politics-260
business-114 business-196  entertainment-038 entertainment-355
politics-175 politics-349  entertainment-143 entertainment-159
entertainment-007 entertainment-013  politics-064 politics-161  politics-335 politics-338
politics-293 politics-333  politics-111 politics-333  politics-069 politics-294
politics-184 politics-327  politics-294 politics-312
"""


def _pairs(block: str) -> set[frozenset]:
    ids = ["bbc-" + x for x in block.split()]
    return {frozenset(ids[i:i + 2]) for i in range(0, len(ids), 2)}


JUDGED = {**{p: "same" for p in _pairs(SAME)}, **{p: "update" for p in _pairs(UPDATE)},
          **{p: "different" for p in _pairs(DIFFERENT)}}

NAMES = ["Jane Wardell", "Paul Sandle", "Kate Holton", "Guy Faulconbridge", "Huw Jones",
         "Sarah Young", "William James", "Estelle Shirbon", "Costas Pitas", "Andy Bruce"]
CITIES = ["LONDON", "NEW YORK", "WASHINGTON", "PARIS", "BRUSSELS", "TOKYO", "SYDNEY"]
AGENCIES = ["Reuters", "AP", "AFP", "PA"]
FILLERS = ["also", "reportedly", "nearly", "officials", "firm", "group", "major", "new",
           "recent", "said", "about", "around", "several", "further", "latest"]
BOILERPLATE = (
    "About the Daily Wire Service: the Daily Wire Service is an independent news agency "
    "serving more than 400 newspapers and broadcasters. This article is distributed under "
    "licence. Copyright 2005 the Daily Wire Service Ltd. All rights reserved. This material "
    "may not be published, broadcast, rewritten or redistributed in whole or in part without "
    "prior written permission. For corrections contact the news desk.")


# -- made copies ---------------------------------------------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?\"])\s+(?=[A-Z\"])")


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def add_byline(paras: list[str], rng: random.Random) -> list[str]:
    dateline = f"{rng.choice(CITIES)} ({rng.choice(AGENCIES)}) - "
    return [f"By {rng.choice(NAMES)}", dateline + paras[0], *paras[1:]]


def trim(paras: list[str], rng: random.Random) -> list[str]:
    """Cut the last 20-40% of the words, at the sentence end nearest the cut (the BBC's
    paragraphs are uneven: the last one often holds half the text)."""
    text = "\n\n".join(paras)
    keep = (1 - rng.uniform(0.2, 0.4)) * len(text.split())
    ends = [m.start() for m in SENTENCE_END.finditer(text)]
    if not ends:
        return paras
    cut = min(ends, key=lambda e: abs(len(text[:e].split()) - keep))
    return paragraphs(text[:cut])


def add_footer(paras: list[str], rng: random.Random) -> list[str]:
    a, b, c = rng.sample(NAMES, 3)
    return [*paras, f"Reporting by {a} and {b}; Editing by {c}",
            "Our Standards: The Thomson Reuters Trust Principles."]


def reflow(paras: list[str], rng: random.Random) -> list[str]:
    sentences = SENTENCE_END.split(" ".join(paras))
    out, i = [], 0
    while i < len(sentences):
        n = rng.randint(1, 4)
        out.append(textwrap.fill(" ".join(sentences[i:i + n]), width=rng.choice((64, 72, 80))))
        i += n
    return out


def substitute(paras: list[str], rng: random.Random) -> list[str]:
    text = "\n\n".join(paras)
    spots = [m for m in re.finditer(r"\b[A-Za-z]{4,}\b", text)]
    n = max(3, len(text.split()) // 60)
    chosen = sorted(rng.sample(spots, min(n, len(spots))), key=lambda m: m.start(),
                    reverse=True)
    for m in chosen:
        word = rng.choice([f for f in FILLERS if f != m.group().lower()])
        text = text[:m.start()] + word + text[m.end():]
    return paragraphs(text)


MAKERS = {"byline": (add_byline,), "trim": (trim,), "footer": (add_footer,),
          "reflow": (reflow,), "words": (substitute,),
          "all": (trim, substitute, add_byline, add_footer, reflow)}


def make_copy(a: Article, kind: str, rng: random.Random, tag: str = "") -> Article:
    paras = paragraphs(a.text)
    for step in MAKERS[kind]:
        paras = step(paras, rng)
    return Article(id=f"copy-{kind}{tag}:{a.id}", title=f"{a.title} ({kind} copy)",
                   text="\n\n".join(paras), source=f"made/{kind}")


def lede(text: str, least: int) -> list[str]:
    """The first paragraphs of ``text`` with at least ``least`` words (stray headings of
    under six words, "Headingley" or "In graphics", left out)."""
    paras, n = [], 0
    for p in paragraphs(text):
        if len(p.split()) >= 6:
            paras.append(p)
            n += len(p.split())
            if n >= least:
                break
    return paras


def make_brief(a: Article) -> Article:
    """The lede alone (at least 30 words): not a copy of the story but its first lines.
    The size-ratio rule keeps it apart; were it first in order, the full story would fold
    into it."""
    return Article(id=f"brief:{a.id}", title=f"{a.title} (brief)",
                   text="\n\n".join(lede(a.text, 30)), source="made/brief")


def make_negative_pair(a: Article, b: Article, c: Article, kind: str,
                       rng: random.Random) -> list[Article]:
    """Two different stories cut to their first paragraphs (at least 30 or 60 words: a
    brief), each ending with the same 60-word block: ``boiler-*`` the standing legal block
    every negative carries (what a publisher appends to all its articles), ``pair-*`` the
    first 60 words of a third story ``c``, for this pair alone (no frequency filter sees
    it)."""
    least = int(kind.split("-")[1])
    block = BOILERPLATE if kind.startswith("boiler") else " ".join(c.text.split()[:60])
    city = rng.choice(CITIES)
    out = []
    for x in (a, b):
        paras = lede(x.text, least)
        paras[0] = f"{city} (Daily Wire) - " + paras[0]
        out.append(Article(id=f"neg-{kind}:{x.id}", title=x.title,
                           text="\n\n".join([*paras, block]), source=f"made/{kind}"))
    return out


# -- the corpus ----------------------------------------------------------------------

def load_corpus() -> tuple[list[Article], list[Article]]:
    """(all 2,225 articles, those with a distinct body: what the loader keeps)."""
    if not CORPUS.is_file():
        raise SystemExit(f"corpus not found: {CORPUS} (the BBC news corpus of ../shared; "
                         "see ../shared/corpus/news/README.md)")
    raw, kept, seen = [], [], set()
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                a = Article(id=r["id"], title=r["title"], text=r["text"], source=r["id"])
                raw.append(a)
                if a.text not in seen:
                    seen.add(a.text)
                    kept.append(a)
    return raw, kept


def category(article_id: str) -> str:
    return article_id.split(":")[-1].split("-")[1]


def exact_near_pairs(arts: list[Article], k: int, floor: float,
                     max_df: int | None = None) -> dict[frozenset, float]:
    """Every pair with containment >= ``floor`` (all pairs, no LSH: a sparse product)."""
    import numpy as np
    from scipy import sparse

    sets = copies.shingle_sets(arts, k, max_df)
    allh, inv = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    x = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, inv)),
                          shape=(len(sets), len(allh)))
    both = sparse.triu(x @ x.T, k=1).tocoo()
    sizes = np.array([len(s) for s in sets])
    con = both.data / np.maximum(1, np.minimum(sizes[both.row], sizes[both.col]))
    keep = (con >= floor) & (np.minimum(sizes[both.row], sizes[both.col]) >= copies.MIN_SHINGLES)
    return {frozenset((arts[i].id, arts[j].id)): float(c)
            for i, j, c in zip(both.row[keep], both.col[keep], con[keep])}


# -- the experiment ------------------------------------------------------------------

def build_set(kept: list[Article], n_sample: int, n_neg: int, seed: int = 0):
    """The evaluation corpus, in order: BBC articles (minus the made negatives'
    originals), the made negatives, then the made copies and briefs. Returns (articles,
    {copy id: original id}, {negative id: kind}, {brief id: original id})."""
    rng = random.Random(seed)
    judged_ids = {i for p in JUDGED for i in p}
    free = [a for a in kept if a.id not in judged_ids]
    rng.shuffle(free)
    sample, rest = free[:n_sample], free[n_sample:]
    by_cat: dict[str, list[Article]] = {}
    for a in rest:
        by_cat.setdefault(category(a.id), []).append(a)
    negs, used = [], set()
    cats = sorted(by_cat)
    for i in range(n_neg):
        kind = NEG_KINDS[i % len(NEG_KINDS)]
        pool = [a for a in by_cat[cats[i % len(cats)]] if a.id not in used]
        a, b, c = pool[0], pool[1], pool[2]
        used |= {a.id, b.id, c.id}
        negs += make_negative_pair(a, b, c, kind, rng)
    arts = [a for a in kept if a.id not in used] + negs
    origin, briefs = {}, {}
    for a in sample:
        for kind in KINDS:
            c = make_copy(a, kind, rng)
            arts.append(c)
            origin[c.id] = a.id
        b = make_brief(a)
        arts.append(b)
        briefs[b.id] = a.id
    return arts, origin, {n.id: n.source.split("/")[1] for n in negs}, briefs


def score(folded: dict[str, tuple[str, float]], origin, negs, briefs) -> dict:
    """Precision, recall and the false folds of one run's {member: (rep, sim)}. A brief
    folded with its own story counts apart (neither right nor wrong)."""
    rep = lambda i: folded.get(i, (i, 1.0))[0]  # noqa: E731
    story = lambda i: origin.get(i, briefs.get(i, i))  # noqa: E731
    found = {k: 0 for k in KINDS}
    total = {k: 0 for k in KINDS}
    for c, o in origin.items():
        kind = c.split(":")[0][5:]
        total[kind] += 1
        found[kind] += c in folded and rep(c) == rep(o)
    right = wrong = 0
    false = {"natural": 0, "copy": 0, **{k: 0 for k in NEG_KINDS}}
    unjudged = []
    brief_folds = 0
    for m, (r, s) in folded.items():
        if m in origin or r in origin or m in briefs or r in briefs:
            ok = story(m) == story(r) or rep(story(m)) == story(r)
            if ok and (m in briefs or r in briefs):
                brief_folds += 1
            elif ok:
                right += 1
            else:
                wrong += 1
                false["copy"] += 1
            continue
        if m in negs or r in negs:
            wrong += 1
            false[negs.get(m) or negs.get(r)] += 1
            continue
        label = JUDGED.get(frozenset((m, r)))
        if label == "same":
            right += 1
        else:
            wrong += 1
            false["natural"] += 1
            if label is None:
                unjudged.append((m, r, s))
    same_pairs = [p for p, lab in JUDGED.items() if lab == "same"]
    natural_found = sum(1 for p in same_pairs if len({rep(i) for i in p}) == 1)
    n_copies = sum(total.values())
    return {"precision": right / (right + wrong) if right + wrong else 1.0,
            "recall": sum(found.values()) / n_copies,
            "by_kind": {k: found[k] / total[k] for k in KINDS},
            "natural_same": (natural_found, len(same_pairs)),
            "false": false, "folds": len(folded), "unjudged": unjudged,
            "briefs": brief_folds / len(briefs)}


def sweep(arts, origin, negs, briefs, settings, thresholds) -> dict:
    """Every (k, measure, max_df, min_ratio) of ``settings`` at every threshold: one LSH
    pass per (k, max_df), then the verified pairs are grouped per setting and threshold."""
    index = {a.id: i for i, a in enumerate(arts)}
    out = {}
    for k, max_df in dict.fromkeys((k, df) for k, _, df, _ in settings):
        sets = copies.shingle_sets(arts, k, max_df)
        cand = copies.candidate_pairs(sets)
        both = {p: copies.scores(sets[p[0]], sets[p[1]]) for p in cand}
        lsh = sum((index[o], index[c]) in both for c, o in origin.items()) / len(origin)
        for kk, measure, df, ratio in settings:
            if (kk, df) != (k, max_df):
                continue
            m = 1 if measure == "containment" else 0
            for t in thresholds:
                g = copies.group({p: s[m] for p, s in both.items()
                                  if s[m] >= t and s[2] >= ratio})
                folded = {arts[i].id: (arts[r].id, s) for i, (r, s) in g.items()}
                out[k, measure, df, ratio, t] = {**score(folded, origin, negs, briefs),
                                                 "lsh_recall": lsh, "candidates": len(cand)}
    return out


def nearest_different(kept: list[Article], k: int) -> list[float]:
    """For every article, the highest containment with a story judged not the same
    (exact over all pairs >= 0.2): how close the hardest negatives come."""
    near = exact_near_pairs(kept, k, 0.2, copies.MAX_DF)
    best: dict[str, float] = {}
    for p, c in near.items():
        if JUDGED.get(p) == "same":
            continue
        for i in p:
            best[i] = max(best.get(i, 0.0), c)
    return sorted(best.values(), reverse=True)


def perturbed(kept: list[Article], n: int, mode: str) -> list[Article]:
    """~``n`` articles from the corpus: ``distinct`` renames every word per repetition
    (new stories with the corpus's statistics); ``copies`` adds made copies of every
    article (``all`` kind) until ``n``."""
    out, r = list(kept), 0
    rng = random.Random(1)
    while len(out) < n:
        r += 1
        for a in kept[: n - len(out)]:
            if mode == "distinct":
                text = re.sub(r"\w+", lambda m, r=r: f"{m.group()}q{r}", a.text)
                out.append(Article(id=f"{a.id}~{r}", title=a.title, text=text, source=a.source))
            else:
                out.append(make_copy(a, "all", rng, tag=str(r)))
    return out


def timed(arts: list[Article], repeat: int = 3) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = len(copies.find_copies(arts))
        times.append(time.perf_counter() - t)
    return statistics.median(times), n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.copies",
                                description=__doc__.split("\n")[0])
    p.add_argument("--sample", type=int, default=300, help="articles to copy (x6 kinds)")
    p.add_argument("--negatives", type=int, default=200, help="made negative pairs")
    p.add_argument("--shingles", default="3,4,5,6,8", help="shingle sizes to sweep")
    p.add_argument("--thresholds", default="0.5,0.6,0.7,0.75,0.8,0.85,0.9")
    p.add_argument("--no-timing", action="store_true")
    args = p.parse_args(argv)
    ks = [int(x) for x in args.shingles.split(",")]
    thresholds = [float(x) for x in args.thresholds.split(",")]

    import datasketch

    raw, kept = load_corpus()
    print(f"corpus: {len(raw)} BBC articles, {len(kept)} distinct bodies "
          f"(exact duplicates dropped as the loader does); datasketch {datasketch.__version__}")
    arts, origin, negs, briefs = build_set(kept, args.sample, args.negatives)
    print(f"evaluation set: {len(arts)} articles = BBC + {len(negs)} made negatives "
          f"+ {len(origin)} made copies of {args.sample} articles ({len(KINDS)} kinds) "
          f"+ {len(briefs)} briefs\n")

    # the corpus's own near-duplicates: every close pair must have been judged
    for k in sorted({3, 5, copies.SHINGLE}):
        near = {**exact_near_pairs(kept, k, 0.45),
                **exact_near_pairs(kept, k, 0.45, copies.MAX_DF)}
        missing = sorted(tuple(sorted(p)) for p in near if p not in JUDGED)
        labels = [JUDGED[p] for p in near if p in JUDGED]
        print(f"BBC pairs with containment >= 0.45 ({k}-word shingles): {len(near)}; judged "
              f"by reading: {labels.count('same')} same story, {labels.count('update')} "
              f"updates, {labels.count('different')} different; unjudged: {len(missing)}")
        for m in missing:
            print("   unjudged:", *m, f"{near[frozenset(m)]:.3f}")
    print()

    df, ratio = copies.MAX_DF, copies.MIN_RATIO
    chosen = (copies.SHINGLE, "containment", df, ratio)
    settings = [(k, measure, df, ratio) for k in ks for measure in ("jaccard", "containment")]
    settings += [(copies.SHINGLE, "containment", None, ratio),
                 (copies.SHINGLE, "containment", df, 0.0)]
    res = sweep(arts, origin, negs, briefs, settings, thresholds)
    print("grid: each cell precision/recall and the number of false folds; precision over "
          "all folds, recall of the made copies; LSH = share of made copies the LSH "
          f"proposed; df = the boilerplate filter (shingles in > {df} articles ignored); "
          "ratio = the least size ratio of the smaller shingle set to the larger")
    print(f"{'k':>2} {'measure':<12} {'df':>4} {'ratio':>5} {'LSH':>5} "
          + " ".join(f"{t:>15}" for t in thresholds))
    for st in settings:
        cells = []
        for t in thresholds:
            r = res[(*st, t)]
            cells.append(f"{r['precision']:.3f}/{r['recall']:.3f} {sum(r['false'].values()):>3}")
        k, measure, d, q = st
        lsh = res[(*st, thresholds[0])]["lsh_recall"]
        print(f"{k:>2} {measure:<12} {str(d):>4} {q:>5.2f} {lsh:>5.3f} "
              + " ".join(f"{c:>15}" for c in cells))

    k, measure = copies.SHINGLE, "containment"
    print(f"\nchosen: {k}-word shingles, {measure}, df {df}, ratio {ratio}; recall per kind "
          "of made copy, natural BBC same-story pairs folded together, lede-only briefs "
          "folded with their story (neither right nor wrong), false folds per source:")
    print(f"{'thr':>5} {'P':>6} {'R':>6} " + " ".join(f"{x:>6}" for x in KINDS)
          + f" {'BBC same':>8} {'briefs':>6}  false: " + " ".join(["BBC", "copy", *NEG_KINDS]))
    for t in thresholds:
        r = res[(*chosen, t)]
        f = r["false"]
        print(f"{t:>5.2f} {r['precision']:>6.3f} {r['recall']:>6.3f} "
              + " ".join(f"{r['by_kind'][x]:>6.3f}" for x in KINDS)
              + f" {r['natural_same'][0]:>4}/{r['natural_same'][1]:<4} {r['briefs']:>6.3f}        "
              + " ".join(f"{f[x]:>{max(3, len(x))}}" for x in ["natural", "copy", *NEG_KINDS]))
        for m, rr, s in r["unjudged"]:
            print(f"      unjudged fold: {m} ~ {rr} ({s:.3f})")
    t = copies.THRESHOLD
    print(f"without the size-ratio rule (ratio 0) at {t}: lede-only briefs folded with their "
          f"story {res[(k, measure, df, 0.0, t)]['briefs']:.3f} (with it "
          f"{res[(*chosen, t)]['briefs']:.3f}); a brief first in order would hold the story")

    near = nearest_different(kept, k)
    print(f"\nhardest negatives: each BBC article's highest containment with a story not "
          f"judged the same ({k}-word shingles): max {near[0]:.3f}, then "
          + ", ".join(f"{x:.3f}" for x in near[1:8])
          + f"; {sum(x >= copies.THRESHOLD for x in near)} articles >= {copies.THRESHOLD}")

    if not args.no_timing:
        print("\ntime of find_copies (defaults; median of 3, this machine):")
        for name, data in [("BBC raw", raw),
                           ("~10k distinct", perturbed(kept, 10_000, "distinct")),
                           ("~10k copies", perturbed(kept, 10_000, "copies"))]:
            sec, n = timed(data)
            print(f"  {name:<14} {len(data):>6} articles: {sec:6.2f} s "
                  f"({1e3 * sec / len(data):.2f} ms/article), {n} folded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
