"""The fitted answer model: one frozen :class:`AnswerModel` value, stored in one file.

``answer_model.json`` beside this module holds the selection weights, the pair gap, the
widening switch, the confidence calibration and the abstention threshold, each with a
note on where it comes from. :func:`answer_model` loads it once; ranking and confidence
(:mod:`rag.answer.extract`) receive the model as an argument. Fitting (``python -m rag.eval
--fit``) returns a new model and, with ``--save-params``, writes it to that file;
nothing changes a model in place.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

PARAMS_FILE = Path(__file__).with_name("answer_model.json")
# The same, for answering with the trained selector (Config.selector).
SELECTOR_PARAMS_FILE = Path(__file__).with_name("answer_model_selector.json")

# The evidence of a candidate sentence (see rag.answer.extract), in this order.
FEATURES = ("cos_s", "cos_p", "lex", "lex_p", "lex_c", "lex_cp", "miss_p", "rank", "type_miss",
            "sel", "sel_gap")
# The features fitting weighs: selection (a conditional logit) and calibration (a
# logistic regression; the passage cosine and the retrieval rank came out negative given
# these, ``miss_p`` added nothing, and fewer features also travel better to other text).
SELECTION_FEATURES = ("cos_s", "lex", "cos_p", "lex_p", "type_miss")
# The confidence reads the keyword coverage with common English words discounted
# (lex_c, lex_cp; rag/answer/terms.py); selection keeps the plain IDF shares, which
# chose better on the development set (fast path one-sentence CV 0.723 with the
# discounted ones vs 0.740).
CALIBRATION_FEATURES = ("cos_s", "lex_c", "lex_cp", "type_miss")


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _linear(w: Mapping[str, float], features: Mapping[str, float]) -> float:
    return w.get("bias", 0.0) + sum(w.get(k, 0.0) * features.get(k, 0.0) for k in FEATURES)


@dataclass(frozen=True)
class AnswerModel:
    """How the answer is chosen and how sure it is.

    ``select``: weights of the selection score (log-odds that a sentence holds the
    answer; unlisted features weigh 0); ``pair_gap``: quote the runner-up too when it is
    the best sentence's neighbour and its score is within this gap (0: never);
    ``widen``: quote a neighbour that holds the kind of answer asked for;
    ``calibration``: ``bias`` and weights of the confidence's logistic regression;
    ``threshold``: below this confidence ``ask`` abstains.

    With the trained selector (``rescore`` > 0): the ``rescore`` best sentences by the
    ``prerank`` weights (the fast path's selection) and the best sentence of each of the
    first k passages are read by the selector, whose log-odds become the feature ``sel``;
    those sentences then come first, ordered by ``select`` (which weighs ``sel``).
    ``selector`` names the selector version these numbers were fitted with.
    """

    select: Mapping[str, float]
    pair_gap: float
    widen: bool
    calibration: Mapping[str, float]
    threshold: float
    provenance: Mapping[str, str] = field(default_factory=dict, compare=False)
    selector: str | None = None
    rescore: int = 0
    prerank: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("select", "calibration", "provenance", "prerank"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def selection_score(self, features: Mapping[str, float]) -> float:
        """The linear selection score (log-odds that the sentence holds the answer)."""
        return _linear(self.select, features)

    def prerank_score(self, features: Mapping[str, float]) -> float:
        """The score that picks the sentences the selector reads (``select`` when the
        model has no ``prerank``)."""
        return _linear(self.prerank or self.select, features)

    def confidence(self, features: Mapping[str, float]) -> float:
        """Probability-like confidence in [0, 1] that a quote with ``features`` answers."""
        cal = self.calibration
        z = cal["bias"] + sum(w * features.get(k, 0.0) for k, w in cal.items() if k != "bias")
        return sigmoid(z)

    def replace(self, **changes: Any) -> "AnswerModel":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"select": dict(self.select), "pair_gap": self.pair_gap, "widen": self.widen,
                "calibration": dict(self.calibration), "threshold": self.threshold,
                "provenance": dict(self.provenance),
                **({"selector": self.selector, "rescore": self.rescore,
                    "prerank": dict(self.prerank)} if self.rescore else {})}

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> "AnswerModel":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(select=data["select"], pair_gap=float(data["pair_gap"]),
                   widen=bool(data["widen"]), calibration=data["calibration"],
                   threshold=float(data["threshold"]), provenance=data.get("provenance", {}),
                   selector=data.get("selector"), rescore=int(data.get("rescore", 0)),
                   prerank=data.get("prerank", {}))

    @property
    def params_file(self) -> Path:
        return SELECTOR_PARAMS_FILE if self.rescore else PARAMS_FILE

    def save(self, path: Path | None = None) -> None:
        Path(path or self.params_file).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")


# beside an index: the answer model `python -m rag.fit` fitted for another embedding model
INDEX_PARAMS = "answer_model.json"
_fitted: dict[tuple, AnswerModel | None] = {}


def fitted_for(index_dir: Path, model_id: str) -> AnswerModel | None:
    """The answer model stored beside the index ``index_dir`` (:data:`INDEX_PARAMS`,
    written by ``python -m rag.fit``) when it was fitted for the embedding model
    ``model_id``; None when there is none, it is another model's or it cannot be read.
    Read again when the file changes."""
    path = Path(index_dir) / INDEX_PARAMS
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _fitted:
        try:
            got: AnswerModel | None = AnswerModel.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            got = None
        if len(_fitted) > 64:
            _fitted.clear()
        _fitted[key] = got
    found = _fitted[key]
    return found if found is not None and found.provenance.get("model") == model_id else None


@functools.cache
def answer_model(selector: bool = False) -> AnswerModel:
    """The shipped model (``answer_model.json``; ``answer_model_selector.json`` for
    answering with the trained selector), loaded once per process."""
    return AnswerModel.load(SELECTOR_PARAMS_FILE if selector else PARAMS_FILE)


def abstain_threshold(cfg, model: AnswerModel) -> float:
    """The configured threshold (``Config.abstain_threshold``), else the model's."""
    return model.threshold if cfg.abstain_threshold is None else cfg.abstain_threshold
