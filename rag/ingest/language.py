"""The language of a text (issue 27): py3langid (BSD; a naive Bayes model over byte
n-grams, stored as numpy arrays, no pickle), 97 languages, ISO 639-1 codes.

Used for what needs a language and nothing else: each article's language is recorded in
its segment (``/api/status`` and the Articles tab count them), and the English answer
selector reads a question only when it is English (:func:`is_english`). The keyword
terms do not depend on it: they follow the script of each word
(:mod:`rag.index.keyword`), so an article and a question always agree.

Measured on XQuAD (`../shared/eval-multilingual`, 300 questions and 48 articles per
language): every article of the 12 languages right; questions 0.977-1.000 right, but
Chinese 0.900 (short Chinese questions are read as Japanese; :func:`is_english` goes by
the script first). The model loads once per
process (about 1 s) on first use. Thread-safe (the model is read-only).
"""

from __future__ import annotations

import re
import threading

UNKNOWN = ""
_lock = threading.Lock()
_identifier = None
# a Latin-script question is not English when another language is detected with at
# least this normalised probability. Measured (XQuAD questions, 600 per language; the
# English development sets): at 0.5, 0.2 % of ../eval's and 0.1 % of eval-shift's
# English questions were taken for another language, none of eval-news' or the seed
# questions, and 95.5-99.5 % of the German, Spanish, Romanian, Turkish and Vietnamese
# ones were recognised (at 0.9: Spanish 46 %)
MIN_CONFIDENCE = 0.5


# English question and function words (measured: in 99.4-100 % of the English
# development questions, and in 1.8-3.3 % of XQuAD's German, Spanish, Romanian, Turkish
# and Vietnamese ones, mostly in English names: "Royal Society of Edinburgh")
_ENGLISH_WORDS = frozenset("what who whom whose which when where why how the did does do "
                           "is were of".split())
_WORD = re.compile(r"[a-z]+")


def _model():
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def detect(text: str, max_chars: int = 1000) -> str:
    """The ISO 639-1 code of ``text``'s language (its first ``max_chars`` characters),
    or :data:`UNKNOWN` for a text without letters."""
    sample = text[:max_chars]
    if not any(ch.isalpha() for ch in sample):
        return UNKNOWN
    lang, _ = _model().classify(sample)
    return str(lang)


def is_english(text: str) -> bool:
    """Whether ``text`` (a question) is English: not when most of its letters are not
    Latin (Cyrillic, Arabic, Chinese...), nor when another language is detected with
    probability >= :data:`MIN_CONFIDENCE`; a text too short to tell counts as English."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return True
    if sum(ord(ch) >= 0x250 for ch in letters) * 2 > len(letters):
        return False
    if text.isascii() and (len(text.split()) < 3
                           or _ENGLISH_WORDS & set(_WORD.findall(text.lower()))):
        return True  # without loading the model (~100 MB resident)
    lang, prob = _model().classify(text)
    return lang == "en" or prob < MIN_CONFIDENCE
