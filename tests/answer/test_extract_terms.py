"""Question-term weights: IDF discounted for words common in their language
(rag/answer/terms.py): English, and the languages with their own keyword analyzer."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from rag.answer.terms import (OTHER_TABLE, RARE, TABLE, WORDFREQ_DIR, english_frequencies,
                              frequencies, generality_discount, term_weights)
from rag.index.keyword import keyword_tokens
from rag.types import IndexMismatch


def test_the_table_is_checked_and_holds_the_bm25_terms():
    freqs = english_frequencies()
    meta = json.loads((WORDFREQ_DIR / "WORDFREQ.json").read_text())
    assert len(freqs) == meta["terms"] > 50_000
    # keyed by the same terms BM25 and the evidence use: stemmed, lower case, no stop words
    for word in ("saying", "employees", "compared", "analysts"):
        (term,) = keyword_tokens(word)
        assert term in freqs
    assert "the" not in freqs and not any(ch.isdigit() for t in freqs for ch in t)
    assert freqs["say"] > freqs["analyst"] > RARE


@pytest.mark.parametrize("table", [TABLE, OTHER_TABLE])
def test_a_tampered_table_is_refused(tmp_path: Path, table: str):
    folder = tmp_path / "wordfreq"
    shutil.copytree(WORDFREQ_DIR, folder)
    with gzip.open(folder / table, "wt", encoding="utf-8") as f:
        f.write("say\t1e-9\n")
    with pytest.raises(IndexMismatch, match="checksum"):
        frequencies.__wrapped__(folder)


def test_other_languages_have_their_own_common_words():
    freqs = frequencies()
    meta = json.loads((WORDFREQ_DIR / "WORDFREQ.json").read_text())
    # they meet only where the English list has a word in another script ("και")
    overlap = meta["terms"] + sum(meta["other_languages"].values()) - len(freqs)
    assert 0 <= overlap <= sum(not t.isascii() for t in english_frequencies())
    assert set(meta["other_languages"]) >= {"de", "es", "ro", "tr"}
    d = {(w, a): generality_discount(keyword_tokens(w, a)[0], freqs)
         for w, a in (("sagte", "de"), ("Mannschaft", "de"), ("Verteidigung", "de"),
                      ("Kawann", "de"), ("dijo", "es"), ("echipa", "ro"), ("dedi", "tr"))}
    assert d["Kawann", "de"] == 1.0  # a name keeps its weight
    assert d["sagte", "de"] < d["Mannschaft", "de"] < d["Verteidigung", "de"] < 1.0
    assert max(d["dijo", "es"], d["echipa", "ro"], d["dedi", "tr"]) < 0.8
    # Arabic, Russian, Greek and Hindi: their stems, in their script
    s = {w: generality_discount(keyword_tokens(w)[0], freqs)
         for w in ("сказал", "защита", "Пантер", "είπε", "άμυνα", "قال", "कहा")}
    assert s["Пантер"] == 1.0 and s["сказал"] < s["защита"] < 1.0
    assert max(s["είπε"], s["قال"], s["कहा"]) < 0.8 and s["άμυνα"] < 1.0
    # the other languages' terms never meet English ones: English weights are as before
    english = english_frequencies()
    assert all(":" in t or not t.isascii() for t in set(freqs) - set(english))
    assert all(freqs[t] == f for t, f in english.items() if t.isascii())


def test_common_words_weigh_less_and_names_and_numbers_keep_their_weight():
    freqs = english_frequencies()
    d = {w: generality_discount(keyword_tokens(w)[0], freqs)
         for w in ("say", "call", "employees", "analyst", "Truist", "DeepSeek", "1998")}
    assert d["Truist"] == d["DeepSeek"] == d["1998"] == 1.0  # unknown or a number
    assert 0 < d["say"] < d["call"] < d["employees"] < d["analyst"] < 1.0
    # monotone: the more frequent of any two terms never weighs more
    terms = sorted(freqs, key=freqs.get)[::500]
    ws = [generality_discount(t, freqs) for t in terms]
    assert all(a >= b for a, b in zip(ws, ws[1:]))
    assert term_weights({"say": 2.0, "truist": 2.0}) == {"say": 2.0 * d["say"], "truist": 2.0}
