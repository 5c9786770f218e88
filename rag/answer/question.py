"""What a question asks for, its content terms, and what never answers it.

* :func:`answer_type`: the kind of answer asked for (money, date, count, number, name),
  and :func:`has_type`: whether a sentence holds one the question does not contain;
* :func:`question_terms`: the question's BM25 terms less the words that only shape it
  (who, how much, name the...);
* :func:`is_heading`: a title or section heading, never quoted as an answer while a
  sentence is on offer.

Pure functions of text; the evidence of :mod:`rag.answer.extract` is built from them.
"""

from __future__ import annotations

import functools
import re

from ..index.keyword import ENGLISH, keyword_tokens

# -- answer types -------------------------------------------------------------

# Checked in answer_type's order: money, date and count questions first, then any other
# quantity.
_NUMBER_Q = re.compile(
    r"\b(how (many|much|long|old|far|large|big|tall|high|wide|deep|often|fast|heavy)|"
    r"what (percentage|percent|proportion|number|amount|size|age)|"
    r"(what|which) (day|time period|period))\b", re.I)
_DATE_Q = re.compile(r"(what|which|in what|in which) (year|years|date|decade|century|month)\b"
                     r"|^\s*when\b|\bwhen (was|were|did|does|do|is|will|had|has)\b", re.I)
_MONEY_Q = re.compile(r"\bhow much\b.*\b(cost|costs|costing|price|paid|pay|pays|spend|spent|"
                      r"worth|budget|charge|charged|earn|earned|raise|raised|sell|sold|money)\b"
                      r"|\bhow much money\b", re.I)
_COUNT_Q = re.compile(r"\bhow many\b", re.I)
# A game's score ("What was the score when Melzer beat Agassi?") and a word's meaning
# ("What does the name Veritas mean?"): a sentence without one does not answer, however
# many words it shares with the question (issue 24, item 2: both quoted such sentences
# at 0.80-0.82).
_SCORE_Q = re.compile(r"\b(?:what|which) (?:was|is|were) the (?:final |half-time |full-time |"
                      r"match )?score\b|\bwhat score\b|\bby what (?:score|margin)\b", re.I)
_MEANING_Q = re.compile(r"\bwhat (?:does|did|do) .{1,80}?\b(?:mean|stand for)\b|"
                        r"\bwhat is the meaning of\b|\bmeaning of the (?:name|word|term)\b",
                        re.I)
_SCORE_TOKEN = re.compile(r"(?<![\d.,])\d{1,3}\s?[-\u2013]\s?\d{1,3}(?![\d.,]*\d)")
_MEANING_TOKEN = re.compile(r"\b(?:means?|meaning|meant|stands? for|stood for|(?:Latin|Greek|"
                            r"French|German|Arabic|Hebrew|Sanskrit) (?:word )?for|derived from|"
                            r"named (?:after|for)|refers? to|translat\w+|literally)\b", re.I)
_PERSON_Q = re.compile(r"^\s*(who|whom|whose)\b|\b(by|to|of) whom\b|"
                       r"^\s*(what|which) (person|company|organi[sz]ation|team|group)\b",
                       re.I)
_MONTHS = ("january february march april may june july august september october "
           "november december")
_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve "
                 "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty "
                 "thirty forty fifty sixty seventy eighty ninety hundred thousand million "
                 "billion trillion dozen dozens hundreds thousands millions billions half "
                 "quarter once twice " + _MONTHS + " century centuries decade decades "
                 "spring summer autumn winter")
_NUMBER_TOKEN = re.compile(r"\d[\d,.]*|\b(?:" + "|".join(_NUMBER_WORDS.split()) + r")\b",
                           re.I)
# A year (3 or 4 digits, or any number with AD/BC), a decade, a century or a month.
_DATE_TOKEN = re.compile(r"\b\d{3,4}s?\b|\b\d{1,4}\s?(?:AD|BC|BCE|CE)\b|\bAD\s?\d{1,4}\b|"
                         r"\b\d+(?:st|nd|rd|th) century\b|"
                         r"\b(?:" + "|".join(_MONTHS.split()) + r")\b", re.I)
_YEAR = re.compile(r"(?:1\d{3}|20\d{2})")
_CURRENCY = re.compile(r"[$£€¥₹]|\b(?:dollars?|pounds?|euros?|cents?|pence|yen|yuan|rupees?|"
                       r"francs?|USD|GBP|EUR)\b", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]+")

# Questions in the other languages measured on XQuAD (issue 27, item 3) that ask when,
# how many, how much or what percentage: the answer is a quantity (a year, a count, an
# amount). Names, money and scores are asked for in English only.
_QUANTITY_Q_OTHER = re.compile(
    r"\b(?:wann|wie viele?|wie lange?|wie alt|wie hoch|wie groß|wie weit|wie oft|"
    r"welche[mns]? jahr|in welchem jahr)\b"                                     # de
    r"|\b(?:cuándo|cuánt[oa]s?|en qué año|qué año|qué porcentaje)"              # es
    r"|\b(?:когда|сколько|в каком году|какого года)\b"                          # ru
    r"|\b(?:πότε|πόσ[οηα]ι?|πόσες|πόσα|ποιο έτος|ποια χρονιά)"                  # el
    r"|\b(?:când|câț[ia]|câte|cât de|în ce an)"                                  # ro
    r"|\b(?:ne zaman|kaç|ne kadar|hangi yıl)"                                    # tr
    r"|\b(?:khi nào|bao giờ|bao nhiêu|bao lâu|năm nào|mấy)"                     # vi
    r"|什么时候|何时|哪一?年|多少|几[个名次年岁位种]|多[长久大高远]"                 # zh
    r"|\b(?:متى|كم|في أي عام|في أي سنة)\b"                                      # ar
    r"|(?<![\u0900-\u097F])(?:कब|कितन[ेीा]|किस वर्ष|किस साल)(?![\u0900-\u097F])"  # hi
    r"|เมื่อไร|เมื่อไหร่|ปีใด|ปีไหน|ปีอะไร|กี่|เท่าไร|เท่าไหร่", re.I)             # th
# A quantity in those languages: digits of any script (``\d`` is Unicode), or a number
# word or numeral. Lenient on purpose (Turkish "bir" is also "a"): a sentence without
# one is the rare one that surely lacks the answer.
_NUMERAL_OTHER = re.compile(
    r"\d[\d,.]*|[〇一二三四五六七八九十百千万亿两]"
    r"|\b(?:eins?|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|hundert|tausend|"
    r"million\w*|milliard\w*"                                                     # de
    r"|uno|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|cien\w*|mil|"
    r"millón|millones"                                                            # es
    r"|один|одн\w+|дв[аеу]\w*|тр[ие]\w*|четыр\w+|пят\w+|шест\w+|сем\w+|восьм\w+|"
    r"восем\w+|девят\w+|десят\w+|сто|сот\w*|тысяч\w*|миллион\w*|миллиард\w*"     # ru
    r"|ένα|δύο|τρία|τρεις|τέσσερ\w+|πέντε|έξι|επτά|οκτώ|εννέα|δέκα|εκατό|χιλι\w+|"
    r"εκατομμύρι\w+"                                                               # el
    r"|unu|doi|două|trei|patru|cinci|șase|șapte|opt|nouă|zece|sute?|mii|milio\w+"  # ro
    r"|bir|iki|üç|dört|beş|altı|yedi|sekiz|dokuz|on|yüz|bin|milyon|milyar"       # tr
    r"|một|hai|ba|bốn|năm|sáu|bảy|tám|chín|mười|trăm|nghìn|ngàn|triệu|tỷ"        # vi
    r"|واحد|اثن\w+|ثلاث\w*|أربع\w*|خمس\w*|ست\w*|سبع\w*|ثماني?\w*|تسع\w*|عشر\w*|"
    r"مائة|مئة|ألف|آلاف|مليون|ملايين|مليار)\b"                                   # ar
    # no \b below: a Devanagari word ends in a vowel sign, which is no \w to Python
    r"|एक|दो|तीन|चार|पांच|पाँच|छह|सात|आठ|नौ|दस|सौ|हज़ार|हजार|लाख|करोड़"           # hi
    r"|หนึ่ง|สอง|สาม|สี่|ห้า|หก|เจ็ด|แปด|เก้า|สิบ|ร้อย|พัน|หมื่น|แสน|ล้าน", re.I)     # th


def answer_type(question: str) -> str | None:
    """The kind of answer asked for: "score" (what was the score), "meaning" (what does
    X mean), "money" (how much ... cost), "date" (when, what year), "count" (how many),
    "number" (other quantities: how long, what percentage), "name" (who), "quantity"
    (when, how many, how much... asked in German, Spanish, Russian, Greek, Romanian,
    Turkish, Vietnamese, Chinese, Arabic, Hindi or Thai), or None."""
    if _SCORE_Q.search(question):
        return "score"
    if _MEANING_Q.search(question):
        return "meaning"
    if _MONEY_Q.search(question):
        return "money"
    if _DATE_Q.search(question):
        return "date"
    if _COUNT_Q.search(question):
        return "count"
    if _NUMBER_Q.search(question):
        return "number"
    if _PERSON_Q.search(question):
        return "name"
    if _QUANTITY_Q_OTHER.search(question):
        return "quantity"
    return None


def has_type(kind: str | None, sentence: str, question_lower: str) -> bool:
    """True when ``sentence`` holds an answer of ``kind`` the question does not contain."""
    if kind is None:
        return True

    def new(matches):
        return any(m.group(0).lower().rstrip(".,") not in question_lower for m in matches)

    if kind == "score":
        return new(_SCORE_TOKEN.finditer(sentence))
    if kind == "meaning":
        return bool(_MEANING_TOKEN.search(sentence))
    if kind == "money":
        return bool(_CURRENCY.search(sentence)) and new(_NUMBER_TOKEN.finditer(sentence))
    if kind == "date":
        return new(_DATE_TOKEN.finditer(sentence))
    if kind == "count":  # a number that is not a year
        return new(m for m in _NUMBER_TOKEN.finditer(sentence)
                   if not _YEAR.fullmatch(m.group(0).rstrip(".,")))
    if kind == "number":
        return new(_NUMBER_TOKEN.finditer(sentence))
    if kind == "quantity":
        return new(_NUMERAL_OTHER.finditer(sentence))
    return new(_NAME.finditer(sentence))


# -- question terms -----------------------------------------------------------

# Words that shape a question but are not its content (BM25's stop-word list keeps some of
# them). They must not count as evidence: in a small index "who" or "much" is rare, so it
# would weigh like a name. "much", "many" and "long" only count as question words after
# "how", and "name", "list", "give"... only as the question's first word ("Name the...",
# but "What was it named after?" asks about a name).
QUESTION_WORDS = ("who whom whose what which when where why how did does do doing done is "
                  "are was were be been being has have had can could would should will "
                  "shall may might must")
_AFTER_HOW = re.compile(r"\bhow (much|many|long)\b", re.I)
_IMPERATIVE = re.compile(r"^\W*(name|list|give|tell|describe|explain|identify|state)\b", re.I)


# The same in the other scripts measured on XQuAD with a stemmer of their own (issue 27;
# Latin-script languages drop theirs as stop words: rag.index.keyword._QUESTION_WORDS).
# Skipped here only, as English ones are: the indexed terms stay as they are.
SCRIPT_QUESTION_WORDS = (
    "ما ماذا من متى أين لماذا كيف كم هل أي أية "                                 # Arabic
    "что кто как где когда почему зачем сколько какой какая какое какие каком кого "
    "чего чем который которая которое которые "                                  # Russian
    "ποιος ποια ποιο ποιοι ποιες ποιου ποιας ποιον ποιων ποιός ποιά ποιό τι πότε πού πώς "
    "γιατί πόσο πόση πόσοι πόσες πόσα "                                           # Greek
    "क्या कौन कौनसा किस किसने किसे किसको किसका किसकी किसके कब कहाँ कहां कितना कितनी "
    "कितने कैसे क्यों")                                                            # Hindi


@functools.cache
def _question_words(analyzer: str = ENGLISH) -> frozenset:
    return frozenset(keyword_tokens(QUESTION_WORDS, analyzer)) | \
        frozenset(keyword_tokens(SCRIPT_QUESTION_WORDS))


def question_terms(question: str, tokens: list[str], analyzer: str = ENGLISH
                   ) -> list[str]:
    """The distinct content terms of ``question`` (its BM25 ``tokens`` under
    ``analyzer``, less the words that only shape a question: English ones, also under
    another analyzer, as an English question over a German article is read under the
    German analyzer too, and those of :data:`SCRIPT_QUESTION_WORDS`)."""
    skip = set(_question_words(analyzer))
    for m in _AFTER_HOW.finditer(question):
        skip.update(keyword_tokens(m.group(1), analyzer))
    m = _IMPERATIVE.match(question)
    if m:
        skip.update(keyword_tokens(m.group(1), analyzer))
    return list(dict.fromkeys(t for t in tokens if t and t not in skip))


# -- headings -----------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?:;\"'”’)\]…]\s*$")


def is_fragment(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` asks rather than states (it ends with "?") or has
    fewer than three words: a reader's "Veritas?" or a caption cannot answer, so, like a
    heading, it is never the answer while a sentence is on offer (issue 24, item 2)."""
    quote = text[start:end].strip().rstrip("\"'”’)]")
    return quote.endswith("?") or len(re.findall(r"\w+", quote)) < 3


def is_heading(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is a line of its own, of at most 12 words, that does
    not end like a sentence: a title or a section heading ("DeepSeek's Origins"). It
    names a topic and states nothing, so it is never quoted as an answer while a sentence
    is on offer (Wikipedia paragraphs have none, so the development set could not weigh
    this; news articles have many)."""
    quote = text[start:end]
    if len(quote.split()) > 12 or _SENTENCE_END.search(quote):
        return False
    i = start - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    j = end
    while j < len(text) and text[j] in " \t":
        j += 1
    return (i < 0 or text[i] == "\n") and (j >= len(text) or text[j] in "\r\n")
