"""Whole answers (issue 24, item 3): a quote that introduces a list carries it, a
citation's ``answers`` is its own, citations after the first fall by score, and other
articles come before a further passage of an article already cited."""

from __future__ import annotations

import pytest

import rag
from rag.answer.extract import REPEAT_FACTOR, REPEAT_FREE, _diverse, carry_list

EMAIL = ("The email package\n\n"
         "The email package is a library for managing email messages. The email package "
         "consists of three major components:\n\n"
         "- a parser, which turns the bytes of a message into a tree of objects;\n"
         "- a generator, which turns such a tree back into bytes;\n"
         "- a policy, which controls the behaviour of the other two.\n\n"
         "It does not send or receive messages: other modules do that.\n")


def test_carry_list_takes_the_items_and_stops_at_prose():
    start = EMAIL.index("The email package consists")
    end = EMAIL.index(":", start) + 1
    new = carry_list(EMAIL, start, end)
    quote = EMAIL[start:new]
    assert quote.endswith("the behaviour of the other two.")
    assert quote.count("\n- ") == 3 and "does not send" not in quote
    assert carry_list(EMAIL, 0, 17) == 17  # not ending with ':'


@pytest.mark.parametrize("items", [
    "1. First, the parser.\n2. Then the generator.\n3) And the policy.",
    "• parser\n• generator\n\n• policy",
    "  a) the parser\n  b) the generator",
])
def test_carry_list_numbered_lettered_and_bulleted(items):
    text = f"It has parts:\n{items}\nThe end."
    end = carry_list(text, 0, text.index(":") + 1)
    assert text[:end].endswith(items.splitlines()[-1].rstrip())


def test_carry_list_leaves_inline_colons_and_long_lists_alone():
    text = "Three parts: a parser, a generator and a policy.\n- not this"
    assert carry_list(text, 0, text.index(":") + 1) == text.index(":") + 1
    many = "Items:\n" + "\n".join(f"- item {i}" for i in range(40))
    end = carry_list(many, 0, 6)
    assert many[:end].count("\n- ") == 20


def test_an_answer_introducing_a_list_quotes_it_with_exact_offsets(cfg):
    (cfg.source / "email.txt").write_text(EMAIL, encoding="utf-8")
    rag.build(config=cfg)
    a = rag.ask("What are the major components of the email package?", config=cfg)
    assert "a policy, which controls" in a.text and a.text.startswith("The email package")
    art = rag.get_article(a.article_id, config=cfg)
    for c in a.citations:
        assert art.text[c.start:c.end] == c.quote if c.article_id == art.id else True
        assert c.passage_start <= c.start <= c.end <= c.passage_end
    assert art.text[a.start:a.end] == a.text


def pool(*rows):
    """(candidate stand-in, article row, confidence) triples."""
    return [(object(), art, score) for art, score in rows]


def test_diverse_prefers_other_articles_unless_far_less_confident():
    assert (REPEAT_FACTOR, REPEAT_FREE) == (0.5, 3)
    p = pool((0, 0.9), (0, 0.8), (0, 0.7), (0, 0.6), (0, 0.55), (1, 0.4), (2, 0.1))
    # article 0's 4th passage counts 0.6 x 0.5 = 0.3: article 1's 0.4 comes first;
    # shown by falling score
    assert [(e[1], e[2]) for e in _diverse(p, 4, {})] == [(0, 0.9), (0, 0.8), (0, 0.7),
                                                          (1, 0.4)]
    assert [e[1] for e in _diverse(p, 5, {})] == [0, 0, 0, 0, 1]
    # far less confident (under half): the same article's passage stays
    far = pool((0, 0.9), (0, 0.8), (0, 0.7), (0, 0.6), (1, 0.29))
    assert [e[1] for e in _diverse(far, 4, {})] == [0, 0, 0, 0]
    chosen = _diverse(p, 7, {})
    assert [e[2] for e in chosen[1:]] == sorted((e[2] for e in chosen[1:]), reverse=True)


def test_diverse_quotes_one_article_per_copy_group():
    chosen = _diverse(pool((0, 0.9), (5, 0.85), (1, 0.2)), 3, {0: (0, 5), 5: (0, 5)})
    assert [e[1] for e in chosen] == [0, 1]


def test_citations_fall_by_score_and_answer_for_themselves(seed_index):
    from rag.answer.params import abstain_threshold, answer_model

    threshold = abstain_threshold(seed_index, answer_model(seed_index.selector))
    seen_false = False
    for q in ("How much did it cost to train R1?", "Who founded DeepSeek?",
              "What did Marc Andreessen call DeepSeek R1?", "What is the capital of Peru?"):
        a = rag.ask(q, config=seed_index)
        rest = [c.score for c in a.citations[1:]]
        assert rest == sorted(rest, reverse=True), q
        for c in a.citations:
            assert c.answers == (not a.abstained and c.score >= threshold), (q, c.n)
            seen_false |= not c.answers
    assert seen_false
