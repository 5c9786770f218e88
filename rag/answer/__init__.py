"""Answering: question -> Answer over a loaded index.

:mod:`.search` (dense + keyword, fused), :mod:`.question` (what the question asks for,
its content terms, headings), :mod:`.extract` (candidate sentences, their evidence,
selection, citations), :mod:`.params` (the fitted :class:`~.params.AnswerModel` and its
file), :mod:`.pipeline` (``ask``). Imports rag.index and below; never rag.app.
"""
