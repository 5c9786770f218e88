"""``ask()``: question -> :class:`~rag.types.Answer`, gluing filter, retrieve and extract;
``search_passages()`` (retrieval only) and ``get_article()`` for the API and MCP tools.

The index is read as a :class:`~rag.answer.corpus.Corpus` (:func:`load_corpus`: one index
or a sharded one, the published version, cached per process); every function here takes
one path whatever its kind. Each call works on one loaded version from start to end, so
an answer never mixes two versions. ``ask`` is safe to call from several threads.
"""

from __future__ import annotations

import functools
import threading
import time
import unicodedata
from datetime import date, datetime
from pathlib import Path

from ..config import RETRIEVAL_HINT, RETRIEVAL_MODES, Config
from ..embedding.model import get_embedder
from ..index.keyword import keyword_tokens
from ..ingest.language import latin_script
from ..index.live import forget_index, load_index
from ..index.shards import is_cluster, read_cluster
from ..types import (NO_ANSWER, Answer, Article, ArticleNotFound, Evidence, Explanation,
                     Filters, InvalidQuestion, Passage, QuestionTooLong)
from .corpus import Corpus
from .dates import DateRange, about_articles, resolve_dates
from .extract import make_citations, score_sentences
from .filters import make_filters
from .params import (FEATURES, AnswerModel, abstain_threshold, answer_model, fitted_for,
                     sigmoid)
from .question import question_terms
from .shards import LocalShards, ShardReader, ShardedIndex, one_folder
from .selector import SelectorError, get_selector


def clean_question(question: object, max_chars: int) -> tuple[str, str]:
    """The question made safe to process, and a note for the user ("" if none).

    Control characters (NUL included) become spaces and runs of white space collapse.
    Raises :class:`QuestionTooLong` when ``question`` has more than ``max_chars``
    characters as given (``Config.max_question_chars``: the one limit of every surface;
    a cut question would answer something the user did not ask), and
    :class:`InvalidQuestion` for a non-string or an empty question. The note is "" (kept
    for callers that show one).
    """
    if not isinstance(question, str):
        raise InvalidQuestion(f"the question must be a string, not {type(question).__name__}")
    if len(question) > max_chars:  # checked first: nothing else reads a long question
        raise QuestionTooLong.of(len(question), max_chars)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in question)
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):
        raise InvalidQuestion("please type a question (it has no letters or digits)"
                              if text else "please type a question (it is empty)")
    return text, ""


def ask(question: str, k: int | None = None, index_dir: str | Path | None = None, *,
        config: Config | None = None, retrieval: str | None = None,
        model: AnswerModel | None = None, filters: Filters | dict | None = None,
        as_of: date | str | None = None, dates: bool = True) -> Answer:
    """Answer ``question`` with a verbatim quote from the indexed articles.

    ``k`` citations at most (default ``config.k``). ``filters`` (a :class:`Filters` or a
    dict of its fields) limits the articles used, before ranking. With ``dates`` (the
    default), relative time in the question ("last week", "in March", "this year";
    :func:`rag.answer.dates.resolve_dates`, read against ``as_of``, default today) limits
    the articles to those published then, unless ``filters`` already gives dates. When
    the question is about the articles themselves ("news from last week", "what was
    reported in March": :func:`rag.answer.dates.about_articles`) that is a filter; else
    the time words may date the event asked about, so all articles are asked too
    (explicit filters still hold) and their answer is taken when nothing published then
    answers, or when it is more confident; ``scope`` then says 'nothing published ...
    answers [as well]; from all articles'. The answer's ``scope`` always says what was
    used. An index where no article has a date ignores such words, and
    ``scope`` says that too. ``answer.explain`` tells why this quote (or why none).

    Raises :class:`InvalidQuestion` for an unusable question, ``k`` or filter,
    :class:`IndexMissing` when nothing is built and :class:`IndexMismatch` when the index
    needs a rebuild. ``model``: the fitted answer model (default: the shipped one,
    :func:`rag.answer.params.answer_model`).
    """
    cfg = config or Config.from_env()
    if index_dir is not None:
        cfg = cfg.replace(index_dir=Path(index_dir))
    k, mode = check_options(cfg, cfg.k if k is None else k, retrieval)
    text, note = clean_question(question, cfg.max_question_chars)
    if cfg.selector and model is None and not latin_script(text):
        # the answer selector learned English question/sentence pairs: a question in
        # another script (Cyrillic, Arabic, Chinese...) is answered by the fitted
        # evidence alone (the fast path; measured in rag.ingest.language.latin_script)
        cfg = cfg.replace(selector=False)
    today = read_as_of(as_of)
    chosen = make_filters(filters, today)
    t0 = time.perf_counter()
    corpus = load_corpus(Path(cfg.index_dir), cfg)
    if model is None:
        model, cfg = answer_model_for(cfg, Path(cfg.index_dir))
    found, dated, scope = _dates_from_question(corpus, text, chosen, today) if dates \
        else (None, chosen, chosen.describe() if chosen else "")
    # the time words, once read as dates, are not matched against the sentences: "last
    # week" in "How much did it cost to train R1 last week?" cost the right quote its
    # confidence (0.61 -> 0.34 on the seed article)
    query = _without_phrase(text, found)
    # the question's vector, embedded once though the period's and all articles are asked
    embed = functools.cache(lambda: get_embedder(cfg).embed_queries([query])[0])
    answer = _answer(corpus, cfg, model, text, query, embed, note, k, mode, dated, scope,
                     t0)
    if found is None or about_articles(text):
        return answer
    # The time words may date the event asked about, not the articles: the period's
    # articles are preferred, and all articles (explicit filters still hold) answer when
    # they answer more confidently, or when nothing published then answers at all.
    wider = _answer(corpus, cfg, model, text, query, embed, note, k, mode, chosen,
                    _fallback_scope(found, chosen, answer.abstained), time.perf_counter())
    if wider.abstained or (not answer.abstained and answer.score >= wider.score):
        return answer
    return wider


def _fallback_scope(found: DateRange, chosen: Filters | None, none_then: bool) -> str:
    what = found.describe().replace("published", "nothing published", 1)
    rest = chosen.describe() if chosen else ""
    return (f"{what} answers{'' if none_then else ' as well'}; from all articles"
            + (f" ({rest})" if rest else ""))


def _without_phrase(text: str, found: DateRange | None) -> str:
    """``text`` less the time words ``found`` was read from (``text`` when None)."""
    if found is None or found.start < 0:
        return text
    rest = " ".join((text[:found.start] + " " + text[found.end:]).split())
    return rest if any(ch.isalnum() for ch in rest) else text


def _answer(corpus: Corpus, cfg: Config, model: AnswerModel, text: str, query: str, embed,
            note: str, k: int, mode: str, chosen: Filters | None, scope: str, t0: float
            ) -> Answer:
    """The answer to the cleaned question ``text``, matched as ``query`` (``text`` less the
    time words read as dates; ``embed()`` gives its vector), from the articles ``chosen``
    allows in ``corpus`` (one version throughout); ``scope`` is shown with it."""
    threshold = abstain_threshold(cfg, model)
    t1 = time.perf_counter()
    found = corpus.retrieve(query, embed, max(cfg.candidates, k), mode, chosen,
                            question_terms(query, keyword_tokens(query)))
    t3 = time.perf_counter()
    if found.view is None:
        return _filtered_out(text, chosen, scope, threshold, t3 - t0)
    view, hits, in_scope = found.view, found.hits, found.in_scope
    qvec = embed()  # cached: embedded once per question
    t2 = t1 + found.embed_ms / 1e3
    selector = None
    if cfg.selector and model.rescore:
        selector = get_selector(cfg.threads)
        if model.selector != selector.version:
            raise SelectorError(f"the answer parameters were fitted with {model.selector}, "
                                f"but {selector.version} is installed: refit them "
                                "(python -m rag.eval ... --selector --fit --save-params)")
    candidates = score_sentences(view, query, qvec, hits, model, selector, k)
    timings = {"load": (t1 - t0) * 1e3, "embed": (t2 - t1) * 1e3, "search": (t3 - t2) * 1e3}
    if not candidates:
        timings["extract"] = (time.perf_counter() - t3) * 1e3
        why = "No passage shares enough with the question."
        return Answer(question=text, text="", abstained=True, score=0.0, message=NO_ANSWER,
                      timings_ms=timings, filters=chosen, scope=scope,
                      explain=_abstention("no_passage", why, threshold, len(hits), in_scope))
    best = candidates[0]
    score = model.confidence(best.features)
    abstained = score < threshold
    citations = tuple(make_citations(view, candidates, k, not abstained, model,
                                     threshold))
    timings["extract"] = (time.perf_counter() - t3) * 1e3
    first = citations[0]
    explain = explain_choice(best, hits[best.hit_rank], model, score, threshold, len(hits),
                             in_scope)
    return Answer(question=text, text="" if abstained else first.quote, abstained=abstained,
                  score=round(score, 4), citations=citations,
                  article_id=None if abstained else first.article_id,
                  start=None if abstained else first.start,
                  end=None if abstained else first.end,
                  message=" ".join(x for x in (NO_ANSWER if abstained else note,
                                               uncalibrated_note(cfg)) if x),
                  timings_ms=timings,
                  filters=chosen, scope=scope, explain=explain)


BUNDLED_MODEL = "all-MiniLM-L6-v2 "  # the model ids the shipped answer model was fitted on


def _shipped_for(cfg: Config) -> bool:
    """Whether the shipped answer model was fitted for ``cfg``'s embedding model."""
    return cfg.model in ("minilm", "fake") or \
        get_embedder(cfg).model_id.startswith(BUNDLED_MODEL)


def answer_model_for(cfg: Config, index_dir: Path) -> tuple[AnswerModel, Config]:
    """The answer model for ``cfg``'s embedding model: the shipped one for MiniLM, else
    the one ``python -m rag.fit`` stored beside the index for that model (with the fast
    path: the selector's answer model is MiniLM's), else the shipped one (answers then
    say so: :func:`uncalibrated_note`)."""
    if not _shipped_for(cfg):
        fitted = fitted_for(index_dir, get_embedder(cfg).model_id)
        if fitted is not None:
            return fitted, cfg.replace(selector=False)
    return answer_model(cfg.selector), cfg


def uncalibrated_note(cfg: Config) -> str:
    """What an answer says when the embedding model is not the one the answer parameters
    were fitted with and none were fitted for it (issue 27): the confidence is then only
    a rough guide."""
    if _shipped_for(cfg) or fitted_for(Path(cfg.index_dir), get_embedder(cfg).model_id):
        return ""
    model_id = get_embedder(cfg).model_id
    return (f"The confidence is calibrated for the bundled MiniLM model, not for "
            f"{model_id}: treat it as a rough guide, or fit it: python -m rag.fit "
            f"--model {cfg.model} --index {cfg.index_dir}.")


def _filtered_out(text: str, chosen: Filters | None, scope: str, threshold: float,
                  seconds: float) -> Answer:
    why = f"No article matches the filters ({scope})."
    return Answer(question=text, text="", abstained=True, score=0.0,
                  message=f"{why} {NO_ANSWER}", timings_ms={"load": seconds * 1e3},
                  filters=chosen, scope=scope,
                  explain=_abstention("filtered_out", why, threshold, 0, in_scope=0))


_clusters: dict[str, tuple] = {}
_clusters_lock = threading.Lock()
_transports: dict[str, object] = {}


def serve_shards_through(index_dir: str | Path, shards) -> None:
    """Read the sharded index in ``index_dir`` through ``shards`` (an object with
    ``call(method, args, shards=None)``, such as Ray Serve handles:
    :mod:`rag.distributed.serve`) instead of loading its shards in this process."""
    key = str(Path(index_dir).resolve())
    with _clusters_lock:
        _transports[key] = shards
        _clusters.pop(key, None)


def forget_corpus(index_dir: str | Path) -> None:
    """Drop the loaded index of ``index_dir`` from this process's caches (answers in
    flight keep theirs; the next call loads the published version again)."""
    key = str(Path(index_dir).resolve())
    with _clusters_lock:
        _clusters.pop(key, None)
    forget_index(index_dir)


def load_corpus(index_dir: Path, cfg: Config) -> Corpus:
    """The live index in ``index_dir`` as a :class:`~rag.answer.corpus.Corpus`: the
    coordinator over its one folder (:func:`~rag.answer.shards.one_folder`), or over a
    sharded index's shards (``python -m rag.build --shards N``), read in this process
    or through what :func:`serve_shards_through` named. Reloads when a build publishes."""
    key = str(Path(index_dir).resolve())
    if not is_cluster(index_dir):
        version = load_index(index_dir, cfg)
        with _clusters_lock:
            cached = _clusters.get(key)
            if cached is None or cached[0] != version.version or cached[2] != cfg:
                same = cached is not None and cached[2] == cfg and cached[3] is not None
                reader = cached[3] if same else ShardReader(index_dir, cfg)
                cached = _clusters[key] = (version.version,
                                           one_folder(index_dir, version, reader), cfg, reader)
            return cached[1]
    name, manifest = read_cluster(index_dir)
    with _clusters_lock:
        cached = _clusters.get(key)
        if cached is None or cached[0] != name or cached[2] != cfg:
            same = cached is not None and cached[2] == cfg and cached[3] is None
            shards = _transports.get(key) or (cached[1].shards if same else LocalShards.of(
                [Path(index_dir) / e["dir"] for e in manifest["shard_versions"]], cfg))
            cached = _clusters[key] = (name, ShardedIndex(name, manifest, shards), cfg, None)
        return cached[1]


def check_options(cfg: Config, k: object, retrieval: str | None) -> tuple[int, str]:
    """``k`` and the retrieval mode, checked; raises InvalidQuestion."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg.max_k:
        raise InvalidQuestion(f"k must be a whole number from 1 to {cfg.max_k}, got {k!r}")
    mode = retrieval or cfg.retrieval
    if mode not in RETRIEVAL_MODES:
        raise InvalidQuestion(RETRIEVAL_HINT)
    return k, mode


def read_as_of(as_of: date | str | None) -> date:
    """``as_of`` as a date (today when None); raises InvalidQuestion when unreadable."""
    if as_of is None:
        return date.today()
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, date):
        return as_of
    try:
        return date.fromisoformat(str(as_of).strip())
    except ValueError:
        raise InvalidQuestion(f"as_of must be a date (YYYY-MM-DD), got {as_of!r}") from None


def _dates_from_question(corpus: Corpus, text: str, chosen: Filters | None, today: date
                         ) -> tuple[DateRange | None, Filters | None, str]:
    """(the range read from the question's time words when it became a filter, the
    filters with those publication dates (explicit dates win), the scope in words)."""
    found = resolve_dates(text, today)
    if found is None or (chosen and (chosen.since or chosen.until)):
        return None, chosen, chosen.describe() if chosen else ""
    if not corpus.has_dates():
        note = f'"{found.phrase}" not used as a date filter: no article has a published date'
        return None, chosen, " · ".join(
            x for x in (chosen.describe() if chosen else "", note) if x)
    merged = Filters(**{**(chosen.__dict__ if chosen else {}),
                        "since": found.since.isoformat() if found.since else None,
                        "until": found.until.isoformat() if found.until else None})
    return found, merged, f'{merged.describe()} (from "{found.phrase}")'


# What each piece of evidence means, for Explanation.evidence.
MEANINGS = {
    "bias": "the calibration's constant",
    "cos_s": "cosine of the question and the quote, [-1, 1]",
    "cos_p": "cosine of the question and the whole passage, [-1, 1]",
    "lex": "share of the question's terms in the quote, weighted by rarity, [0, 1]",
    "lex_p": "share of the question's terms in the passage, weighted by rarity, [0, 1]",
    "lex_c": "share of the question's terms in the quote, weighted by rarity here and in "
             "English at large, [0, 1]",
    "lex_cp": "share of the question's terms in the passage, weighted by rarity here and in "
              "English at large, [0, 1]",
    "miss_p": "rarity of the rarest question term the passage lacks, [0, 1]",
    "rank": "1 / (1 + the passage's retrieval rank)",
    "type_miss": "1 when the quote lacks the kind of answer asked for (a date, an amount...)",
    "sel": "the answer selector's log-odds that the quote answers",
    "sel_gap": "the selector's log-odds for the quote minus those for the best other "
               "sentence it read",
}


def explain_choice(best, hit, model: AnswerModel, score: float, threshold: float,
                   candidates: int, in_scope: int | None) -> Explanation:
    """The evidence behind ``best`` and what each adds to the confidence's log-odds: the
    contributions (the constant included) sum to ``logit(score)``."""
    cal = model.calibration
    feats = best.features
    evidence = [Evidence("bias", 1.0, round(cal.get("bias", 0.0), 4), MEANINGS["bias"])]
    evidence += [Evidence(name, round(float(feats[name]), 4),
                          round(cal.get(name, 0.0) * float(feats[name]), 4), MEANINGS[name])
                 for name in FEATURES if name in feats]
    answered = score >= threshold
    detail = (f"confidence {score:.2f} is at or above the threshold {threshold:.2f}"
              if answered else
              f"confidence {score:.2f} is below the threshold {threshold:.2f}: the best "
              "quote is shown as the nearest passage, not as an answer")
    return Explanation(
        reason="answered" if answered else "below_threshold", detail=detail,
        confidence=round(score, 4), threshold=round(threshold, 4),
        margin=round(score - threshold, 4),
        selector_probability=round(sigmoid(feats["sel"]), 4) if "sel" in feats else None,
        dense_rank=hit.dense_rank, keyword_rank=hit.keyword_rank,
        keyword_coverage=round(float(feats.get("lex", 0.0)), 4),
        passage_keyword_coverage=round(float(feats.get("lex_p", 0.0)), 4),
        candidates=candidates, articles_in_scope=in_scope, evidence=tuple(evidence))


def _abstention(reason: str, detail: str, threshold: float, candidates: int,
                in_scope: int | None = None) -> Explanation:
    return Explanation(reason=reason, detail=detail, confidence=0.0,
                       threshold=round(threshold, 4), margin=round(-threshold, 4),
                       candidates=candidates, articles_in_scope=in_scope)


def search_passages(query: str, k: int = 10, index_dir: str | Path | None = None, *,
                    config: Config | None = None, retrieval: str | None = None,
                    filters: Filters | dict | None = None,
                    as_of: date | str | None = None) -> list[Passage]:
    """The ``k`` passages that best match ``query`` (retrieval only: no sentence is
    chosen and nothing abstains), best first. ``filters`` as for :func:`ask`; dates in
    the query are not read as filters here (a list of passages has nowhere to say so).
    Raises as :func:`ask` does."""
    cfg = config or Config.from_env()
    k, mode = check_options(cfg, k, retrieval)
    text, _ = clean_question(query, cfg.max_question_chars)
    chosen = make_filters(filters, read_as_of(as_of))
    corpus = load_corpus(Path(index_dir or cfg.index_dir), cfg)
    found = corpus.retrieve(text, lambda: get_embedder(cfg).embed_queries([text])[0]
                            if mode != "keyword" else None, k, mode, chosen)
    view, hits = found.view, found.hits
    if view is None:
        return []
    out = []
    for n, hit in enumerate(hits, 1):
        row, start, end = (int(x) for x in view.chunks[hit.chunk][:3])
        art = view.article(row)
        out.append(Passage(n=n, article_id=art.id, title=art.title, source=art.source,
                           start=start, end=end, text=art.text[start:end],
                           score=round(hit.fused, 6), dense=round(hit.dense, 4),
                           url=art.url, published=art.published, author=art.author,
                           page=art.page_at(start), file_date=art.file_date,
                           date_source=art.date_source))
    return out


def get_article(article_id: str, index_dir: str | Path | None = None, *,
                config: Config | None = None) -> Article:
    """The indexed article with this id (its full text and metadata, as indexed).
    Raises :class:`ArticleNotFound` when the index has no such id (ids are looked up,
    never used as paths)."""
    cfg = config or Config.from_env()
    if not isinstance(article_id, str) or not article_id:
        raise ArticleNotFound("give an article id")
    found = load_corpus(Path(index_dir or cfg.index_dir), cfg).article(article_id)
    if found is None:
        shown = article_id if len(article_id) <= 200 else article_id[:200] + "…"
        raise ArticleNotFound(f"no article with id {shown!r} in the index")
    return found
