"""The index: one self-describing folder per version, published atomically.

:mod:`.store` (versions, manifest, the loaded :class:`~.store.Index`), :mod:`.dense`
(FAISS), :mod:`.keyword` (BM25, the only module that touches bm25s), :mod:`.build`
(the incremental builder), :mod:`.live` (the published version, cached per process).
Imports rag.ingest, rag.embedding, rag.config and rag.types; nothing above.
"""
