"""Quotes a reader can trust on their own (issue 23, item 4): a quote cut by a passage
boundary is completed to the whole sentence, and a quote opening with a reference back
takes in the sentence before it; offsets stay exact."""

from __future__ import annotations

import pytest

import rag
from rag.answer.spans import depends_on_previous, whole_sentences, with_antecedent
from rag.ingest.chunking import split_sentences

PARK = ("Riverside Park opens to the public on Saturday after a two-year restoration. "
        "The park covers forty hectares along the river. "
        "It was designed by the landscape architect Mara Quist.\n\n"
        "Entry is free for residents of the county.\n")


@pytest.mark.parametrize("sentence,expected", [
    ("They said the plant would close.", True),
    ("It was designed by Mara Quist.", True),
    ("The company said profits rose.", True),
    ('"They will not return," he said.', True),
    ("Itself a landmark, the bridge stands.", False),
    ("Theresa May said the plan would go ahead.", False),
    ("The river floods each spring.", False),
    ("Mara Quist designed the park.", False),
    ("ซึ่งเป็นเมืองหลวงของจังหวัด", True),  # Thai: "which is the province's capital"
    ("แต่เขาไม่ได้กลับมา", True),  # "but he did not come back"
    ("แต่ละทีมมีผู้เล่นสิบเอ็ดคน", False),  # "each team has eleven players"
    ("โดยทั่วไปฝนตกในเดือนมิถุนายน", False),  # "generally it rains in June"
    ("ในปี 2010 มีการเลือกตั้ง", False),  # "in 2010 there was an election"
])
def test_depends_on_previous(sentence, expected):
    assert depends_on_previous(sentence) is expected


def test_whole_sentences_completes_a_cut_quote_and_keeps_whole_ones():
    spans = split_sentences(PARK)
    a, b = spans[1]
    assert whole_sentences(PARK, a + 9, b - 4) == (a, b)  # cut at both ends
    assert whole_sentences(PARK, a, b) == (a, b)
    lo, hi = whole_sentences(PARK, a + 3, spans[2][0] + 5)  # across two sentences
    assert (lo, hi) == (a, spans[2][1])
    # a text without line breaks is searched near the quote only, with the same result
    flat = "Filler sentence number one. " * 500 + PARK.replace("\n", " ")
    off = flat.index("The park covers")
    assert flat[slice(*whole_sentences(flat, off + 9, off + 20))] == \
        "The park covers forty hectares along the river."


def test_with_antecedent_takes_the_previous_sentence_of_the_passage_only():
    spans = split_sentences(PARK)
    it_start, it_end = spans[2]
    assert PARK[it_start:it_end].startswith("It was designed")
    assert with_antecedent(PARK, it_start, it_end, 0, spans) == spans[1][0]
    # the previous sentence starts before the passage: the quote stays as it was
    assert with_antecedent(PARK, it_start, it_end, spans[1][0] + 1, spans) == it_start
    # a sentence naming its subject is left alone
    e_start, e_end = spans[3]
    assert with_antecedent(PARK, e_start, e_end, 0, spans) == e_start


def test_an_answer_opening_with_it_quotes_what_it_refers_to(cfg):
    (cfg.source / "park.txt").write_text(PARK, encoding="utf-8")
    rag.build(config=cfg)
    a = rag.ask("Who designed it, the landscape architect?", config=cfg)
    assert "Mara Quist" in a.text
    assert a.text.startswith("The park covers"), a.text
    art = rag.get_article(a.article_id, config=cfg)
    assert art.text[a.start:a.end] == a.text
    for c in a.citations:
        assert c.passage_start <= c.start <= c.end <= c.passage_end
        if c.article_id == art.id:
            assert art.text[c.start:c.end] == c.quote
            assert art.text[c.passage_start:c.passage_end] == c.passage


def test_citations_are_whole_sentences_even_where_passages_cut_them(cfg):
    # passages of 40 tokens cut these long sentences; every quote is still whole sentences
    long = " ".join(f"Sentence {i} tells of the harbour, the ferries, the gulls and the "
                    f"fishing fleet that leaves at dawn number {i}." for i in range(12))
    (cfg.source / "harbour.txt").write_text(long + "\n", encoding="utf-8")
    rag.build(config=cfg)
    sents = split_sentences(long)
    starts, ends = {a for a, _ in sents}, {b for _, b in sents}
    for q in ("When does the fishing fleet leave?", "What does sentence 7 tell of?"):
        a = rag.ask(q, config=cfg)
        for c in a.citations:
            assert c.start in starts and c.end in ends, c.quote
            assert long[c.start:c.end] == c.quote


@pytest.mark.parametrize("lang", ("en", "th"))
def test_a_sentence_inside_its_passage_needs_no_second_split(lang):
    """Oracle: with the passage's bounds, :func:`whole_sentences` skips the splitter for a
    sentence touching neither bound; for every stored sentence (and pair of neighbours)
    of passages cut as the build cuts them, the result equals splitting again."""
    from rag.ingest.chunking import OffsetTextSplitter, sentences_in
    from tests.ingest.test_languages import TESLA

    text = PARK * 3 if lang == "en" else (TESLA[:TESLA.index("ซึ่งมี")] + "\n") * 3
    splitter = OffsetTextSplitter(length_function=len, chunk_size=120, chunk_overlap=20)
    sents = split_sentences(text)
    checked = 0
    for p_start, p_end in splitter.split_spans(text):
        inside = sentences_in(sents, p_start, p_end)
        for a, b in inside + [(x[0], y[1]) for x, y in zip(inside, inside[1:])]:
            assert whole_sentences(text, a, b, (p_start, p_end)) == whole_sentences(text, a, b)
            checked += 1
    assert checked >= 8
