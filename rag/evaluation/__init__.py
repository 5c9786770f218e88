"""Measurement, never imported by the runtime: :mod:`.run` (``python -m rag.eval``),
:mod:`.fit` (fitting the AnswerModel, ``--fit``), :mod:`.metrics` (pure metric
functions). Reads rag.answer and rag.index."""
