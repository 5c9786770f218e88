"""Syndicated copies: articles that hold the same story as an earlier article.

The same wire story reaches a corpus from several outlets: another headline, a byline or
dateline, a trimmed ending, a paragraph added, "Reporting by ..." boilerplate, a few words
changed. :func:`find_copies` finds them at build time (exact duplicates never get here:
the loader skips them) and maps each copy to the one article that represents its story.

How: each article's text is normalised (NFKC, case-folded, punctuation dropped) into
words and 5-word shingles, hashed (blake2b per word, so stable across runs and machines);
shingles found in more than 25 articles are boilerplate and dropped; datasketch's MinHash
LSH proposes candidate pairs, and every candidate is verified exactly on the shingle sets
before it counts. See :func:`find_copies` for the similarity, the defaults and the
measurement behind them (``python -m benchmarks.copies``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..types import Article

# The defaults, chosen with ``python -m benchmarks.copies`` (see find_copies).
THRESHOLD = 0.8      # containment of the smaller shingle set in the larger one
SHINGLE = 5          # words per shingle
MIN_SHINGLES = 20    # an article with fewer (non-boilerplate) shingles never matches
MIN_RATIO = 0.5      # the smaller set holds at least half as many shingles as the larger
MAX_DF = 25          # a shingle in more articles than this is boilerplate: ignored
NUM_PERM = 128       # MinHash permutations
LSH_PARAMS = (64, 2)  # bands x rows: a pair is a candidate with P = 1 - (1 - J**2)**64,
#                       J = Jaccard: 0.1 -> 47%, 0.2 -> 93%, 0.3 -> 99.8%
SEED = 1             # MinHash permutations (datasketch's RandomState seed)

_APOSTROPHE = re.compile(r"['\u2019\u02bc]")
_WORD = re.compile(r"[^\W_]+")
_MIX1, _MIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_PRIME = np.uint64(0x100000001B3)


def words(text: str) -> list[str]:
    """The normalised words of ``text``: NFKC, case-folded, apostrophes dropped ("don't"
    -> "dont"), every other punctuation mark a word break."""
    text = _APOSTROPHE.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _WORD.findall(text)


def shingles(text: str, k: int = SHINGLE, *, _vocab: dict | None = None) -> np.ndarray:
    """The sorted distinct 64-bit hashes of the ``k``-word shingles of ``text`` (stable
    across runs and machines: blake2b of each word, combined in order)."""
    vocab = {} if _vocab is None else _vocab
    ws = words(text)
    if len(ws) < k:
        return np.zeros(0, dtype=np.uint64)
    get = vocab.get

    def new(w: str) -> int:
        h = vocab[w] = int.from_bytes(
            hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little")
        return h

    ids = np.fromiter([get(w) or new(w) for w in ws], dtype=np.uint64, count=len(ws))
    n = len(ws) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    for j in range(k):  # polynomial in the k word hashes, wrapping mod 2**64
        h = h * _PRIME + ids[j:j + n]
    h ^= h >> np.uint64(33)  # murmur3's finaliser spreads the bits
    h *= _MIX1
    h ^= h >> np.uint64(33)
    h *= _MIX2
    h ^= h >> np.uint64(33)
    return np.unique(h)


def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """|a & b| of two sorted distinct hash arrays."""
    return len(np.intersect1d(a, b, assume_unique=True))


def scores(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(Jaccard, containment of the smaller set in the larger, size ratio smaller/larger)
    of two shingle sets; each in [0, 1]."""
    both = overlap(a, b)
    small, large = sorted((len(a), len(b)))
    union = small + large - both
    return ((both / union if union else 0.0), (both / small if small else 0.0),
            (small / large if large else 0.0))


def shingle_sets(articles: Sequence[Article], shingle: int = SHINGLE,
                 max_df: int | None = MAX_DF) -> list[np.ndarray]:
    """Each article's shingle set, less the shingles found in more than ``max_df``
    articles (boilerplate: a standing footer, disclaimer or "about us" block)."""
    vocab: dict = {}
    sets = [shingles(a.text, shingle, _vocab=vocab) for a in articles]
    if max_df is not None and len(sets) > max_df:
        found, counts = np.unique(np.concatenate(sets), return_counts=True)
        common = found[counts > max_df]
        if len(common):
            sets = [np.setdiff1d(s, common, assume_unique=True) for s in sets]
    return sets


def candidate_pairs(sets: Sequence[np.ndarray], *, min_shingles: int = MIN_SHINGLES,
                    num_perm: int = NUM_PERM, lsh_params: tuple[int, int] = LSH_PARAMS,
                    seed: int = SEED) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, that datasketch's MinHash LSH proposes, over the sets with
    at least ``min_shingles`` shingles: a pair with Jaccard J is proposed with probability
    1 - (1 - J**r)**b for ``lsh_params`` (b bands, r rows); the defaults propose J = 0.2
    at 93% and J >= 0.3 at 99.8%, low enough for a copy trimmed to half its original.
    Sorted; independent of the order of ``sets`` (a pair is proposed when one of its
    bands collides, whatever came first). MinHash sees the low 32 bits of each shingle
    hash; the permutations come from ``seed`` (datasketch's RandomState), so runs repeat."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(num_perm=num_perm, params=lsh_params)
    proto = MinHash(num_perm=num_perm, seed=seed, hashfunc=int)
    mask = np.uint64(0xFFFFFFFF)
    pairs = []
    for i, s in enumerate(sets):
        if len(s) < min_shingles:
            continue
        m = proto.copy()
        m.update_batch((s & mask).astype(np.uint32).tolist())
        pairs.extend((j, i) for j in lsh.query(m))
        lsh.insert(i, m, check_duplication=False)
    return sorted(pairs)


def find_copies(articles: Sequence[Article], *, threshold: float = THRESHOLD,
                shingle: int = SHINGLE, min_shingles: int = MIN_SHINGLES,
                min_ratio: float = MIN_RATIO, max_df: int | None = MAX_DF,
                measure: str = "containment") -> dict[str, tuple[str, float]]:
    """Map each copy's article id to (the id of the article it copies, similarity).

    **Similarity** is the containment of the smaller shingle set in the larger,
    ``|A & B| / min(|A|, |B|)`` over ``shingle``-word shingles of the normalised texts,
    boilerplate shingles (in more than ``max_df`` articles) left out: the share of the
    shorter text's word runs that the other text holds too, in [0, 1] (1.0: every
    5-word run of one is in the other). Containment, not Jaccard, so that a copy with
    its ending cut still matches (Jaccard of a copy trimmed by 30% is about 0.7).
    ``measure="jaccard"`` uses ``|A & B| / |A | B|`` instead.

    **Accepted** when the similarity is at least ``threshold`` and the smaller set holds
    at least ``min_ratio`` times as many shingles as the larger: a brief of a story's
    first lines is inside the story but does not hold it (were the brief first in order,
    the whole story would fold into it). Articles with fewer than ``min_shingles``
    shingles (about 25 words) never match. LSH only proposes pairs; every accepted pair
    is verified exactly on the two shingle sets.

    **Groups**: articles are taken in the given order; each one folds into the most
    similar earlier *representative* it matches itself (the earlier on a tie), else it
    represents its own story. So every member maps to the first article of its group and
    a representative never maps anywhere (no chains); an article that matches only a
    copy, not that copy's representative, stays on its own. Which pairs match does not
    depend on the order; only which member represents a group does. Deterministic.

    **The defaults** (``python -m benchmarks.copies``; the BBC corpus of 2,092 distinct
    articles plus 1,800 made copies of 300 of them, 400 made hard negatives and 300
    briefs): 5-word shingles, containment >= 0.8, ratio >= 0.5, boilerplate above 25
    articles: precision 1.000 (no false fold), recall 0.984 of the made copies (byline,
    trimmed ending, footer, reflow: 1.000; a few words changed: 1.000; all of these at
    once: 0.907), 33 of the 35 same-story pairs of the BBC corpus judged by reading
    (missed: one with a paragraph rewritten, containment 0.72, and one with 40 readers'
    comments added). At 0.75 a later story on the same event with new facts
    (containment 0.786) folds, and the recall gain is 1%; precision comes first, since a
    false fold hides a different story. 3-word shingles at 0.85 score the same (recall
    0.993); 5 words match fewer stock phrases by chance. Time: about 1.2 s for 2,225
    articles and 6 s for 10,000 (linear) on one CPU core.
    """
    if measure not in ("containment", "jaccard"):
        raise ValueError(f"measure must be 'containment' or 'jaccard', not {measure!r}")
    if not articles:
        return {}
    sets = shingle_sets(articles, shingle, max_df)
    which = 1 if measure == "containment" else 0
    pairs = {}
    for i, j in candidate_pairs(sets, min_shingles=min_shingles):
        both = scores(sets[i], sets[j])
        sim = both[which]
        if sim >= threshold and both[2] >= min_ratio:
            pairs[i, j] = sim
    return {articles[i].id: (articles[r].id, float(s))
            for i, (r, s) in group(pairs).items()}


def group(pairs: dict[tuple[int, int], float]) -> dict[int, tuple[int, float]]:
    """Fold accepted pairs {(i, j), i < j: similarity} into groups, in order: each
    article joins the most similar earlier representative it matches itself (the earlier
    one on a tie), else it represents its own story. Returns {member: (representative,
    similarity)}; a representative is never a member, so there are no chains."""
    earlier: dict[int, list[tuple[int, float]]] = {}
    for (i, j), s in pairs.items():
        earlier.setdefault(j, []).append((i, s))
    folded: dict[int, tuple[int, float]] = {}
    for j in sorted(earlier):
        reps = [(s, -i) for i, s in earlier[j] if i not in folded]
        if reps:
            s, i = max(reps)
            folded[j] = (-i, s)
    return folded


# -- incremental folding (issue 26): what a build adds, against what the index holds --

_PRIME61 = np.uint64((1 << 61) - 1)


def _permutations(num_perm: int = NUM_PERM, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    a = rng.randint(1, (1 << 61) - 1, size=num_perm, dtype=np.uint64)
    b = rng.randint(0, (1 << 61) - 1, size=num_perm, dtype=np.uint64)
    return a, b


_PERMS = _permutations()


def minhash(shingle_set: np.ndarray) -> np.ndarray:
    """The MinHash signature (NUM_PERM uint32) of one shingle set: per permutation the
    least ``(a * x + b) mod 2**61-1`` (wrapping in 64 bits, as datasketch does) over the
    low 32 bits of each shingle; all ones for an empty set."""
    if not len(shingle_set):
        return np.full(NUM_PERM, 0xFFFFFFFF, dtype=np.uint32)
    x = (shingle_set & np.uint64(0xFFFFFFFF)).astype(np.uint64)[:, None]
    a, b = _PERMS
    h = ((x * a + b) % _PRIME61) & np.uint64(0xFFFFFFFF)
    return h.min(axis=0).astype(np.uint32)


def band_keys(signatures: np.ndarray, rows: int = LSH_PARAMS[1]) -> np.ndarray:
    """(n, bands) uint64: each band of ``rows`` signature values as one key (two values
    of 32 bits per key with the default 2 rows)."""
    sig = np.asarray(signatures).reshape(len(signatures), -1, rows)
    keys = sig[:, :, 0].astype(np.uint64)
    for r in range(1, rows):  # in place: one (n, bands) array, not one per step
        keys <<= np.uint64(32)
        keys ^= sig[:, :, r]
    return keys


class BandIndex:
    """Band keys (n rows x bands, :func:`band_keys`) sorted band by band, to find the
    rows sharing a key with a query by binary search: O(bands log n) a query instead
    of a comparison over all n x bands keys (~14 ms at 100k rows, a watched build's
    largest cost before). Building costs ~0.9 s and 12 bytes a key at 100k rows, once
    per segment and process (:func:`rag.index.segments.stored_band_index`). Read-only
    once built; thread-safe."""

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys)
        order = np.argsort(keys, axis=0, kind="stable")
        self.sorted = np.ascontiguousarray(np.take_along_axis(keys, order, axis=0).T)
        self.order = np.ascontiguousarray(order.T, dtype=np.int32)

    def rows(self, mine: np.ndarray) -> list[int]:
        """The rows (ascending) with the key of ``mine`` (one key per band) in any band:
        those of ``np.flatnonzero((keys == mine).any(axis=1))``."""
        hits = []
        for band, (keys, key) in enumerate(zip(self.sorted, mine)):
            lo = int(keys.searchsorted(key, "left"))
            if lo < len(keys) and keys[lo] == key:
                hits.append(self.order[band, lo:int(keys.searchsorted(key, "right"))])
        return np.unique(np.concatenate(hits)).tolist() if hits else []


def proposer(ids: Sequence[str], keys: np.ndarray,
             accept: Callable[[int, str], bool] | None = None,
             index: BandIndex | None = None):
    """A proposer for :func:`fold`: the ``ids`` (row by row, with their band ``keys``,
    :func:`band_keys`) that share a band key with the keys it is given and that
    ``accept(row, id)`` (default: all); one comparison over ``keys``, or a binary
    search per band with their ``index`` (the same rows)."""
    def propose(mine: np.ndarray) -> list[str]:
        rows = index.rows(mine) if index is not None else \
            np.flatnonzero((keys == mine).any(axis=1)).tolist()
        return [ids[r] for r in rows if accept is None or accept(r, ids[r])]
    return propose


def fold(position: Mapping[str, object], to_fold: Iterable[str],
         propose: Callable[[np.ndarray], Iterable[str]], signature_of, set_of, *,
         threshold: float = THRESHOLD, min_shingles: int = MIN_SHINGLES,
         min_ratio: float = MIN_RATIO) -> dict[str, tuple[str, float]]:
    """Fold the articles ``to_fold`` (ids) into representatives, in corpus order
    (``position``: id -> its place in the corpus, or any key sorting in corpus order,
    for every article): each one joins the
    most similar representative it matches (the index's, those ``propose(keys)`` gives
    for an article's band keys (uint64, one per band): every representative sharing a
    band key with it; then those made in this pass before it; the earlier in corpus
    order on a tie) or becomes one itself. ``signature_of(id)`` gives the MinHash of an
    article to fold, ``set_of(id)`` any article's shingle set.

    Matching is :func:`find_copies`'s (containment >= ``threshold``, size ratio >=
    ``min_ratio``, at least ``min_shingles`` shingles each; LSH with the same bands
    proposes, every proposal is verified exactly) without its boilerplate filter, which
    needs the shingles of the whole corpus. A build without an index folds everything
    this way, so a fresh build and a sequence of builds agree whenever articles arrive
    in corpus order; otherwise the first to arrive represents its story. Cost: one
    ``propose`` per article folded, and hash tables for the rest. Returns {id:
    (representative, similarity)} for the articles folded."""
    new_ids: list[str] = []
    tables: list[dict[int, list[int]]] = [{} for _ in range(LSH_PARAMS[0])]
    folded: dict[str, tuple[str, float]] = {}
    for aid in sorted(to_fold, key=position.__getitem__):
        mine = set_of(aid)
        key_row = band_keys(signature_of(aid)[None])[0]
        keys = key_row.tolist()
        best: tuple[float, int, str] | None = None
        if len(mine) >= min_shingles:
            found = set(propose(key_row))
            for b, k in enumerate(keys):
                found.update(new_ids[i] for i in tables[b].get(k, ()))
            # earlier in corpus order first (ids the corpus lacks before all), so that
            # on a tie the earlier wins; ``position``'s keys may be any sortable values
            for other_id in sorted(found, key=lambda x: (x in position, position.get(x))):
                other = set_of(other_id)
                if len(other) < min_shingles:
                    continue
                _, contain, ratio = scores(mine, other)
                if contain >= threshold and ratio >= min_ratio and \
                        (best is None or contain > best[0]):
                    best = (contain, other_id)
        if best is not None:
            folded[aid] = (best[1], float(best[0]))
            continue
        for b, k in enumerate(keys):
            tables[b].setdefault(k, []).append(len(new_ids))
        new_ids.append(aid)
    return folded
