"""Measurement, never imported by the runtime: :mod:`.run` (``python -m rag.eval``),
:mod:`.fit` (fitting the AnswerModel, ``--fit``), :mod:`.metrics` (pure metric
functions), :mod:`.dates` (relative time in questions over dated articles,
``python -m rag.evaluation.dates``). Reads rag.answer and rag.index."""
