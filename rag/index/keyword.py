"""The keyword index: BM25 over the passages, scored when asked (issue 26).

A segment stores raw postings, not scores: per term the passages holding it and how
often, and per passage its length in terms (:func:`build_keyword_writer`; memory-mapped
numpy arrays and a JSON vocabulary, never a pickle). The corpus statistics BM25 needs
(passages, their mean length, each term's document frequency) are added up at question
time over every live segment, less deleted passages (:class:`KeywordStats`), and every
segment scores with those: a passage scores exactly as it would in one index built
fresh over the same articles, however they are split into segments or shards, and a new
segment never rewrites an old one (Lucene's design). bm25s stored scores with the
statistics baked in, so every segment and shard had to be rewritten when any changed.

The formula is bm25s's default ("lucene": Lucene's IDF and Robertson's term
frequency, k1 1.5, b 0.75), and ``tests/index/test_keyword.py`` checks the scores
against bm25s on one segment (bm25s stays the oracle and the source of the stop
words). The terms indexed (:func:`keyword_tokens`: lower-cased, stemmed, no stop words)
are those ``bm25s.tokenize`` gives for English. Read-only once loaded; safe to share
between threads.

Analyzers (issue 27): a passage's Latin-script words are stemmed by its article's
language where Snowball has a stemmer for it (:data:`LATIN_STEMMERS`: German, Spanish,
Romanian, Turkish...), with that language's stop words, and stored with the language
as a prefix ("de:verteid"), as Elasticsearch keeps one field per language analyzer;
every other article, and every word in another script, has today's terms (English
stemmer for Latin words, the script's stemmer or character pairs for the rest). A
question is analyzed by every analyzer its index holds (:func:`question_words`): each
passage can only match the terms of its own analyzer, so a passage scores the same
whichever other languages share the index, and no question needs its language told (an
index of English articles alone asks with the English terms only, as before).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from tokenize import TokenError
from typing import Sequence

import numpy as np

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
# what the terms are, recorded in the settings of an index (another value: a rebuild)
KEYWORD_TERMS = "bm25s-english+scripts"
_local = threading.local()


def _stemmer():
    """A Snowball English stemmer for this thread (PyStemmer objects are not thread-safe)."""
    stem = getattr(_local, "stem", None)
    if stem is None:
        import Stemmer

        stem = _local.stem = Stemmer.Stemmer("english").stemWords
    return stem


ENGLISH = "en"  # the default analyzer: every language without its own below
# Latin-script languages with a Snowball stemmer (PyStemmer >= 2.2), by ISO 639-1 code:
# their articles' Latin words get that stemmer. Keyword search alone, the question's
# article first (XQuAD, every 6th question, English terms -> the language's analyzer;
# tests/index/test_terms.py): German 0.899 -> 0.930, Romanian 0.920 -> 0.970, Turkish
# 0.884 -> 0.945, Spanish 0.965 -> 0.960; English 0.955 either way.
LATIN_STEMMERS = {"ca": "catalan", "da": "danish", "de": "german", "es": "spanish",
                  "eu": "basque", "fi": "finnish", "fr": "french", "ga": "irish",
                  "hu": "hungarian", "id": "indonesian", "it": "italian",
                  "lt": "lithuanian", "nl": "dutch", "no": "norwegian",
                  "pt": "portuguese", "ro": "romanian", "sv": "swedish", "tr": "turkish"}
_ALIASES = {"nb": "no", "nn": "no", "ms": "id"}  # py3langid's codes for the same stemmer
# bm25s's stop-word lists, where it has one
_STOP_LISTS = {"da": "DANISH", "de": "GERMAN", "es": "SPANISH", "fr": "FRENCH",
               "it": "ITALIAN", "nl": "DUTCH", "no": "NORWEGIAN", "pt": "PORTUGUESE",
               "sv": "SWEDISH", "tr": "TURKISH"}
# Words that shape a question in those languages (as rag.answer.question's QUESTION_WORDS
# do in English): stop words too, or a question's "wer" or "kaç", rare in articles, would
# weigh like a name. English stop words are stop words under every analyzer (an English
# question over a German article is read under the German analyzer too).
_QUESTION_WORDS = {
    "de": "wer wen wem wessen was wann wo woher wohin warum weshalb wieso wie welche "
          "welcher welches welchen welchem viele viel",
    "es": "qué quién quiénes cuál cuáles cuándo dónde cómo cuánto cuánta cuántos "
          "cuántas",
    "fr": "qui que quoi quel quelle quels quelles quand où comment pourquoi combien",
    "it": "chi cosa quale quali quando dove come perché quanto quanta quanti quante",
    "pt": "quem qual quais quando onde como porque quanto quanta quantos quantas",
    "nl": "wie wat welk welke wanneer waar hoe waarom hoeveel",
    "ro": "cine ce care când unde cum câte câți cât câtă de",
    "tr": "kim kimin kime kimi ne neden nerede nereye nereden niçin niye hangi hangisi "
          "kaç nasıl mi mı mu mü",
}


def analyzer_of(language: str) -> str:
    """The analyzer of an article in ``language`` (an ISO 639-1 code, "" unknown): its
    code where :data:`LATIN_STEMMERS` has it, else :data:`ENGLISH`."""
    code = _ALIASES.get(language, language)
    return code if code in LATIN_STEMMERS else ENGLISH


def keyword_tokens(text: str, analyzer: str = ENGLISH) -> list[str]:
    """The lower-cased, stemmed, stop-word-free terms BM25 indexes for ``text`` (an
    article's passage or sentence; ``analyzer``: :func:`analyzer_of` its language): for
    English (any ASCII text) exactly what ``bm25s.tokenize(..., stemmer=...)`` gives
    (same pattern, stop words and stemmer), without its per-call set-up (~15 ms a
    question; this takes ~0.05 ms). Other scripts and analyzers: see :func:`_analyze`."""
    return list(_keyword_tokens(text, analyzer))


@lru_cache(maxsize=1 << 16)
def _keyword_tokens(text: str, analyzer: str = ENGLISH) -> tuple[str, ...]:
    """Cached: the sentences of popular passages are scored again and again."""
    return _analyze(text, analyzer)


def question_words(text: str, analyzers: Sequence[str] = ()) -> list[str]:
    """A question's BM25 terms for searching an index whose articles were indexed under
    English and ``analyzers`` (:attr:`rag.index.store.Index.analyzers`): its English
    terms (:func:`keyword_tokens`, repeats kept, as bm25s counts them), then its
    prefixed terms under each of ``analyzers``. A passage holds the terms of one
    analyzer only, so it is scored by the question's terms under that one, and a part of
    the index without an analyzer has none of its terms (their count there is 0: parts
    asked with fewer analyzers add up to the same statistics). ~13 µs an analyzer."""
    return list(_question_words(text, tuple(analyzers)))


@lru_cache(maxsize=1 << 12)
def _question_words(text: str, analyzers: tuple[str, ...]) -> tuple[str, ...]:
    out = list(_keyword_tokens(text))
    for code in analyzers:
        out.extend(t for t in _keyword_tokens(text, code) if t.startswith(code + ":"))
    return tuple(out)


# Scripts written without spaces between words: their runs are indexed as overlapping
# character pairs (CJK ideographs, kana, Thai, Lao, Khmer, Myanmar), as Lucene's CJK
# analyzer does; \w\w+ made a whole Chinese clause one term, which matched nothing.
_UNSPACED = "\u0E00-\u0EFF\u1000-\u109F\u1780-\u17FF\u3040-\u30FF\u3400-\u4DBF" \
            "\u4E00-\u9FFF\uF900-\uFAFF"
_RUNS = re.compile(f"[{_UNSPACED}]+|[^{_UNSPACED}]+")
UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")  # one character of those scripts
# A word's stemmer by the script of its first letter (Snowball, PyStemmer): a rule of
# the text alone, so an article and a question agree without knowing their language;
# Latin-script words take their analyzer's stemmer (English's unless the article's
# language has one: LATIN_STEMMERS).
_SCRIPT_STEMMERS = ((re.compile("[\u0400-\u04FF]"), "russian"),
                    (re.compile("[\u0370-\u03FF\u1F00-\u1FFF]"), "greek"),
                    (re.compile("[\u0600-\u06FF\u0750-\u077F]"), "arabic"),
                    (re.compile("[\u0900-\u097F]"), "hindi"))


def _analyze(text: str, analyzer: str = ENGLISH) -> tuple[str, ...]:
    """The terms of ``text``: words of two or more word characters, lower-cased, without
    stop words, stemmed. English: ASCII text takes bm25s's path unchanged. Otherwise
    words keep their combining marks, and each word is cut into runs of unspaced scripts
    (each run -> its character pairs; a lone character stays) and the rest (stemmed by
    its script's Snowball stemmer, and Cyrillic words lose Russian stop words too).
    Another ``analyzer`` (:data:`LATIN_STEMMERS`): its language's stop and question words
    besides English's, and its stemmer for Latin-script words, their terms prefixed with
    its code."""
    if analyzer != ENGLISH:
        stop, stem, prefix = _latin_analyzer(analyzer)
        if text.isascii():  # every word Latin: the general path's terms, faster
            words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
            return tuple([prefix + t for t in stem(words)]) if words else ()
        return _analyze_words(text, stop, stem, prefix)
    stop = _STOPWORDS if _STOPWORDS is not None else _stopwords()
    if text.isascii():
        words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
        return tuple(_stemmer()(words)) if words else ()
    return _analyze_words(text, stop, _stemmer(), "")


def _analyze_words(text: str, stop: frozenset, latin_stem, prefix: str
                   ) -> tuple[str, ...]:
    """:func:`_analyze` past its English ASCII shortcut: ``latin_stem`` stems a list of
    Latin-script words, whose terms take ``prefix``."""
    # letters with their combining marks (Devanagari and Thai vowel signs are marks, not
    # \w: "पैंथर्स" came out as "थर"); two characters or more, as \w\w+
    words = [w for w in _word_pattern().findall(text.lower())
             if len(w) > 1 and w not in stop]
    out: list[str] = []
    plain: list[str] = []  # Latin words waiting for one call of their stemmer

    def flush() -> None:
        if plain:
            stems = latin_stem(plain)
            out.extend([prefix + t for t in stems] if prefix else stems)
            plain.clear()

    for word in words:
        if word.isascii():
            plain.append(word)
            continue
        for run in _RUNS.findall(word) if UNSPACED_CHAR.search(word) else (word,):
            if UNSPACED_CHAR.match(run):
                flush()
                out.extend([run] if len(run) == 1 else
                           [run[i:i + 2] for i in range(len(run) - 1)])
                continue
            lang = next((name for pat, name in _SCRIPT_STEMMERS if pat.match(run)), None)
            if lang is None:
                if len(run) > 1 or run == word:
                    plain.append(run)
                continue
            flush()
            if lang == "russian" and run in _russian_stopwords():
                continue
            stem = _script_stemmer(lang)(run)
            if len(stem) > 1:  # Hindi postpositions stem to one letter (की -> क)
                out.append(stem)
    flush()
    return tuple(out)


@lru_cache(maxsize=1)
def _word_pattern():
    import regex  # Unicode properties (\p{M}); re has none

    return regex.compile(r"[\w\p{M}]+")


def _latin_analyzer(code: str) -> tuple[frozenset, object, str]:
    """(stop words, stemmer of a word list for this thread, term prefix) of the analyzer
    ``code``; ValueError for an unknown one."""
    if code not in LATIN_STEMMERS:
        raise ValueError(f"no keyword analyzer {code!r}")
    cache = getattr(_local, "latin", None)
    if cache is None:
        cache = _local.latin = {}
    if code not in cache:
        import Stemmer

        cache[code] = (_latin_stopwords(code),
                       Stemmer.Stemmer(LATIN_STEMMERS[code]).stemWords, code + ":")
    return cache[code]


@lru_cache(maxsize=None)
def _latin_stopwords(code: str) -> frozenset:
    from bm25s import stopwords

    listed = getattr(stopwords, f"STOPWORDS_{_STOP_LISTS[code]}", ()) \
        if code in _STOP_LISTS else ()
    return frozenset(listed) | frozenset(_QUESTION_WORDS.get(code, "").split()) | \
        _stopwords()


def _script_stemmer(lang: str):
    """The Snowball stemmer of ``lang`` for this thread, as a function of one word."""
    cache = getattr(_local, "scripts", None)
    if cache is None:
        cache = _local.scripts = {}
    if lang not in cache:
        import Stemmer

        cache[lang] = Stemmer.Stemmer(lang).stemWord
    return cache[lang]


@lru_cache(maxsize=1)
def _russian_stopwords() -> frozenset:
    from bm25s.stopwords import STOPWORDS_RUSSIAN

    return frozenset(STOPWORDS_RUSSIAN)


def _stopwords() -> frozenset:
    global _STOPWORDS
    if _STOPWORDS is None:
        from bm25s.stopwords import STOPWORDS_EN

        _STOPWORDS = frozenset(STOPWORDS_EN)
    return _STOPWORDS


_STOPWORDS: frozenset | None = None


K1 = 1.5   # bm25s's (and Lucene's) defaults
B = 0.75


@dataclass(frozen=True)
class KeywordStats:
    """The corpus statistics BM25 scores with: live passages, their total length in
    terms, and the document frequency of each term asked about. Segments and shards
    add theirs up (:meth:`plus`)."""

    n_docs: int
    total_len: int
    df: dict[str, int]

    def plus(self, other: "KeywordStats") -> "KeywordStats":
        df = dict(self.df)
        for t, n in other.df.items():
            df[t] = df.get(t, 0) + n
        return KeywordStats(self.n_docs + other.n_docs, self.total_len + other.total_len, df)

    @property
    def avg_len(self) -> float:
        """The mean passage length (0 for no passage)."""
        return self.total_len / self.n_docs if self.n_docs else 0.0

    def idf(self, term: str) -> float:
        return idf_of(self.df.get(term, 0), self.n_docs)

    def idf_all(self, terms: list[str]) -> dict[str, float]:
        return {t: self.idf(t) for t in terms}


def tokenize_passages(texts: list[str], analyzers: Sequence[str] | None = None
                      ) -> list[tuple[str, ...]]:
    """Each passage's terms, in order (:func:`keyword_tokens`, uncached: passages are
    read once), under its analyzer (``analyzers``, one per passage; None: English)."""
    if analyzers is None:
        return [_analyze(text) for text in texts]
    return [_analyze(text, a) for text, a in zip(texts, analyzers, strict=True)]


FILES = ("vocab.json", "indptr.npy", "docs.npy", "tf.npy", "lengths.npy")


def build_keyword_writer(texts: list[str], analyzers: Sequence[str] | None = None):
    """Index ``texts`` (passage i = row i; its analyzer ``analyzers[i]``, None: all
    English) now; return a function that writes the postings into a new folder."""
    tokens = tokenize_passages(texts, analyzers)
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int32, count=len(tokens))
    pairs: dict[str, dict[int, int]] = {}
    for doc, terms in enumerate(tokens):
        for t in terms:
            row = pairs.setdefault(t, {})
            row[doc] = row.get(doc, 0) + 1
    vocab = sorted(pairs)
    sizes = np.fromiter((len(pairs[t]) for t in vocab), dtype=np.int64, count=len(vocab))
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    docs = np.empty(int(indptr[-1]), dtype=np.int32)
    tf = np.empty(int(indptr[-1]), dtype=np.int32)
    for i, t in enumerate(vocab):  # docs ascending within a term (dict insertion order)
        row = pairs[t]
        docs[indptr[i]:indptr[i + 1]] = list(row)
        tf[indptr[i]:indptr[i + 1]] = list(row.values())

    def write(folder: Path) -> None:
        import json

        folder.mkdir()
        with open(folder / "vocab.json", "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        for name, arr in (("indptr.npy", indptr), ("docs.npy", docs), ("tf.npy", tf),
                          ("lengths.npy", lengths)):
            with open(folder / name, "wb") as f:
                np.save(f, arr, allow_pickle=False)

    return write


# What a damaged numpy file raises while loading: numpy parses the header with
# ast.literal_eval, so a garbled one can raise SyntaxError or tokenize.TokenError too.
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, TokenError)
# What a damaged keyword index raises while loading (the caller reports it as such).
LOAD_ERRORS = (*NPY_ERRORS, KeyError, TypeError)


def load_keyword_index(folder: Path) -> "KeywordIndex":
    """The postings in ``folder`` (memory-mapped). Raises one of :data:`LOAD_ERRORS`
    when they are damaged."""
    import json

    with open(folder / "vocab.json", encoding="utf-8") as f:
        vocab = json.load(f)
    if not isinstance(vocab, list):
        raise ValueError("vocab.json is not a list")
    arrays = {n: np.load(folder / f"{n}.npy", mmap_mode="r", allow_pickle=False)
              for n in ("indptr", "docs", "tf", "lengths")}
    if len(arrays["indptr"]) != len(vocab) + 1 or len(arrays["docs"]) != len(arrays["tf"]) \
            or (len(vocab) and int(arrays["indptr"][-1]) != len(arrays["docs"])):
        raise ValueError("postings do not match the vocabulary")
    return KeywordIndex(vocab, **arrays)


class KeywordIndex:
    """One segment's postings (row i = passage i). Scores need the corpus statistics
    (:class:`KeywordStats`), which the caller sums over every live segment."""

    def __init__(self, vocab: list[str], indptr, docs, tf, lengths) -> None:
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.indptr, self.docs, self.tf, self.lengths = indptr, docs, tf, lengths
        self.n_docs = len(lengths)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(passages, term frequencies) of ``term``, passages ascending."""
        i = self.vocab.get(term)
        if i is None:
            return _NONE, _NONE
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        return np.asarray(self.docs[lo:hi]), np.asarray(self.tf[lo:hi])

    def stats(self, terms: list[str], live: np.ndarray | None = None) -> KeywordStats:
        """This segment's share of the corpus statistics: its live passages (``live``: a
        bool mask over passages, None: all), their total length, and the document
        frequency of each of ``terms`` among them."""
        df = {}
        for t in dict.fromkeys(terms):
            docs, _ = self.postings(t)
            if not len(docs):  # most of a question's terms under other analyzers
                df[t] = 0
                continue
            df[t] = int(len(docs) if live is None else np.count_nonzero(live[docs]))
        if live is None:
            return KeywordStats(self.n_docs, int(np.sum(self.lengths, dtype=np.int64)), df)
        return KeywordStats(int(np.count_nonzero(live)),
                            int(np.sum(self.lengths[live], dtype=np.int64)), df)

    def scores(self, terms: list[str], stats: KeywordStats) -> np.ndarray:
        """BM25 of every passage of this segment for the question ``terms`` (in order,
        repeats counting again, as bm25s does), under the corpus ``stats``: float64,
        >= 0. Each passage's score is the same float whichever segment holds it."""
        out = np.zeros(self.n_docs, dtype=np.float64)
        if not stats.n_docs:
            return out
        avg = stats.avg_len
        for t in terms:
            docs, tf = self.postings(t)
            if not len(docs):
                continue
            norm = K1 * ((1 - B) + B * self.lengths[docs] / avg)
            out[docs] += stats.idf(t) * (tf / (norm + tf))
        return out

    def search(self, terms: list[str], n: int, stats: KeywordStats,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(passage, BM25 score > 0) of the top ``n`` passages for ``terms`` among
        ``allowed`` (a bool mask over passages, None: all), best first (ties: lower
        passage first)."""
        if n <= 0 or not terms:
            return []
        s = self.scores(terms, stats)
        hits = np.flatnonzero(s > 0) if allowed is None else np.flatnonzero((s > 0) & allowed)
        if len(hits) > n:
            part = np.argpartition(-s[hits], n - 1)[:n]
            cut = s[hits[part]].min()
            hits = hits[s[hits] >= cut]  # keep every tie at the cut
        order = np.lexsort((hits, -s[hits]))[:n]
        return [(int(hits[i]), float(s[hits[i]])) for i in order]


_NONE = np.zeros(0, dtype=np.int32)


def idf_of(df: int, n_docs: int) -> float:
    """BM25 (Lucene) inverse document frequency of a term found in ``df`` of ``n_docs``
    passages."""
    n = max(n_docs, 1)
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def idf_from(df: dict[str, int], n_docs: int) -> dict[str, float]:
    """:func:`idf_of` for each term of ``df``."""
    return {t: idf_of(d, n_docs) for t, d in df.items()}
