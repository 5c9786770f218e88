"""rag.index.copies: syndicated copies found at build time (offline, made articles; the
one test on the BBC corpus of ../shared skips without it)."""

from __future__ import annotations

import json
import random

import pytest

from rag.index import copies
from rag.index.copies import find_copies
from rag.types import Article
from tests.conftest import SHARED


FLOODS = [
    "Heavy rain has forced hundreds of families from their homes in the north of the "
    "county, where two rivers burst their banks overnight and flooded the centre of the "
    "market town.",
    "Emergency crews worked through the night to pump water from the streets and to move "
    "elderly residents to a leisure centre that the council opened as a shelter. Police "
    "closed the main bridge after the water rose to within a metre of its deck.",
    "The Environment Agency said more than 70 millimetres of rain had fallen in 36 hours, "
    "almost twice the usual amount for the whole of November. It issued severe warnings "
    "for the lower valley and told people living near the old mill to leave at once.",
    "Shopkeepers spent the morning carrying stock upstairs. One baker said the water had "
    "come through the back door in minutes and ruined flour, ovens and the new counter "
    "she had bought only last spring.",
    "The council leader promised grants for the worst hit households and said engineers "
    "would inspect the flood defences, which were built in 1998 and had never been "
    "overtopped before this week.",
    "Forecasters expect a drier spell from Thursday, but warned that the ground was "
    "saturated and that any further showers could send the rivers over their banks again "
    "before the weekend.",
]

MATCH_A = """United came from behind to beat City 3-1 at a packed stadium on Saturday and move \
two points clear at the top of the table.

City took the lead after 12 minutes when their captain headed in a corner at the far post, \
and the visitors defended deep for the rest of the first half.

The home side equalised four minutes after the break through a low shot from the edge of the \
area, and the winger added a second with a curling free-kick midway through the half.

A late penalty, given for a trip on the substitute striker, sealed the win. The manager said \
his players had shown great character and that the title race was far from over."""

MATCH_B = """Rovers held Athletic to a goalless draw at a wet and windy ground on Tuesday night \
to end a run of five straight defeats.

Athletic had the better of the first half and hit the post twice, but the young goalkeeper \
made three fine saves to keep the visitors level at the break.

The home side pressed after the interval and a header from the centre-back was cleared off \
the line in stoppage time. The referee waved away late appeals for a penalty.

The manager said his players had shown great character and that a clean sheet was something \
to build on before the cup tie at the weekend."""


def art(aid: str, text: str, title: str = "") -> Article:
    return Article(id=aid, title=title or aid, text=text, source=aid)


def flood_copy(paras: list[str], *, keep: int, byline: str, footer: str | None) -> str:
    out = [byline, "LONDON (Reuters) - " + paras[0], *paras[1:keep]]
    if footer:
        out.append(footer)
    return "\n\n".join(out)


ORIGINAL = art("wire/floods.txt", "\n\n".join(FLOODS), "Families flee as rivers burst banks")
# another headline, a byline and dateline, the last two paragraphs cut, a footer
COPY = art("daily/floods-copy.txt",
           flood_copy(FLOODS, keep=4, byline="By Jane Wardell",
                      footer="Reporting by Kate Holton; Editing by Huw Jones"),
           "Town under water after night of rain")
# another outlet: a word changed, reflowed paragraphs, only the last paragraph cut
COPY2 = art("herald/rivers.txt",
            " ".join(FLOODS[:5]).replace("leisure centre", "sports hall")
            .replace(". ", ".\n", 3), "Rivers burst their banks")


def test_a_copy_with_new_headline_byline_and_trimmed_ending_maps_to_the_first():
    other = art("sport/match-a.txt", MATCH_A)
    found = find_copies([ORIGINAL, other, COPY])
    assert list(found) == [COPY.id]
    rep, sim = found[COPY.id]
    assert rep == ORIGINAL.id
    assert copies.THRESHOLD <= sim <= 1.0
    # the same pair the other way round: the first in order represents the story
    assert find_copies([COPY, other, ORIGINAL]) == {ORIGINAL.id: (COPY.id, sim)}


def test_a_group_of_three_maps_to_one_representative():
    found = find_copies([ORIGINAL, COPY, COPY2])
    assert {m: r for m, (r, _) in found.items()} == {COPY.id: ORIGINAL.id,
                                                     COPY2.id: ORIGINAL.id}
    found = find_copies([COPY2, ORIGINAL, COPY])
    assert {m: r for m, (r, _) in found.items()} == {ORIGINAL.id: COPY2.id,
                                                     COPY.id: COPY2.id}


def test_no_chains_a_copy_of_a_copy_folds_only_into_a_story_it_matches():
    rng = random.Random(3)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ta", "vi", "zo")
             for b in ("ba", "de", "fi", "go", "hu", "ja", "ke", "li", "mo", "ny")]
    paras = [" ".join(rng.choice(vocab) for _ in range(40)) for _ in range(8)]
    # a window of six paragraphs sliding by one: neighbours share 5/6, a and c only 4/6
    a, b, c = (art(n, "\n\n".join(paras[i:i + 6])) for i, n in enumerate("abc"))
    found = find_copies([a, b, c])
    assert {m: r for m, (r, _) in found.items()} == {"b": "a"}  # c matches b, not a
    assert not set(r for r, _ in found.values()) & set(found)


def test_different_stories_on_one_topic_are_not_folded():
    footer = "Reporting by Kate Holton; Editing by Huw Jones"
    a = art("a", "By Jane Wardell\n\nLONDON (Reuters) - " + MATCH_A + "\n\n" + footer)
    b = art("b", "By Jane Wardell\n\nLONDON (Reuters) - " + MATCH_B + "\n\n" + footer)
    assert find_copies([a, b, ORIGINAL]) == {}
    # ... nor two briefs that end with the same standing block found in many articles
    block = ("About the Daily Wire Service: an independent news agency serving more than 400 "
             "newspapers and broadcasters. This material may not be published, broadcast, "
             "rewritten or redistributed in whole or in part without prior permission.")
    briefs = [art(f"brief-{i}", f"{p}\n\n{block}") for i, p in enumerate(FLOODS)]
    rng = random.Random(5)
    others = [art(f"other-{i}", " ".join(rng.choice(MATCH_B.split()) for _ in range(40))
                  + f"\n\n{block}") for i in range(copies.MAX_DF)]
    assert len(copies.shingle_sets(briefs[:1] + others)[0]) < 40  # the block is dropped
    assert find_copies(briefs + others) == {}


def test_short_articles_never_match():
    short = "Rivers burst their banks overnight and flooded the town centre."
    assert find_copies([art("s1", short), art("s2", short + " Police closed the bridge.")]) == {}
    assert find_copies([art("e", ""), art("f", "   "), art("g", "?!"), ORIGINAL]) == {}
    # a brief (the story's first lines alone) does not hold the story: were it first,
    # the whole story would fold into it
    assert find_copies([art("lede", "\n\n".join(FLOODS[:2])), ORIGINAL]) == {}


def test_deterministic_and_the_pairs_do_not_depend_on_the_order():
    extra = art("copy3", "\n\n".join(FLOODS[:5]) + "\n\nMore on this story later.")
    match_copy = art("match-copy", "By Sam Fox\n\n" + MATCH_A.rsplit("\n\n", 1)[0])
    arts = [ORIGINAL, art("match-a", MATCH_A), COPY, art("match-b", MATCH_B), COPY2,
            match_copy, extra]
    first = find_copies(arts)
    assert first == find_copies(arts) == find_copies(list(arts))

    def groups(found: dict) -> set[frozenset]:
        reps: dict[str, set] = {}
        for m, (r, _) in found.items():
            reps.setdefault(r, {r}).add(m)
        return {frozenset(g) for g in reps.values()}

    expected = groups(first)
    assert expected == {frozenset({ORIGINAL.id, COPY.id, COPY2.id, "copy3"}),
                        frozenset({"match-a", "match-copy"})}
    rng = random.Random(0)
    for _ in range(5):
        order = arts[:]
        rng.shuffle(order)
        found = find_copies(order)
        assert groups(found) == expected
        position = {a.id: i for i, a in enumerate(order)}
        for m, (r, _) in found.items():  # the representative is the first of its group
            assert position[r] < position[m]
            assert all(position[r] <= position[x] for g in expected if r in g for x in g)


def test_empty_input_and_a_single_article():
    assert find_copies([]) == {}
    assert find_copies([ORIGINAL]) == {}


def test_a_bad_measure_is_refused():
    with pytest.raises(ValueError):
        find_copies([ORIGINAL], measure="cosine")


def test_the_bbc_corpus_folds_its_same_story_versions_and_nothing_else():
    path = SHARED / "corpus" / "news" / "articles.jsonl"
    if not path.is_file():
        pytest.skip(f"the BBC news corpus is not here ({path})")
    arts, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["text"] not in seen:  # the loader drops exact duplicates
            seen.add(r["text"])
            arts.append(art(r["id"], r["text"], r["title"]))
    found = find_copies(arts)
    pairs = {frozenset((m, r)) for m, (r, _) in found.items()}
    for a, b in [("tech-049", "tech-340"), ("sport-444", "sport-458"),
                 ("business-209", "business-229"), ("business-260", "business-354")]:
        assert frozenset((f"bbc-{a}", f"bbc-{b}")) in pairs
    # updates on the same event with new facts (read and judged) stay apart, and so does
    # the story with 40 readers' comments under it, twice the size of the story alone
    for a, b in [("politics-069", "politics-312"), ("sport-226", "sport-232"),
                 ("politics-327", "politics-328"), ("politics-111", "politics-293")]:
        assert frozenset((f"bbc-{a}", f"bbc-{b}")) not in pairs
    assert 30 <= len(found) <= 36  # 33 of the 35 same-story pairs judged by reading
