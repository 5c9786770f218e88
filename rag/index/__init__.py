"""The index: immutable segments, versions that list them, published atomically.

:mod:`.store` (segments, versions, manifests, the loaded segment
:class:`~.store.Index`), :mod:`.segments` (a loaded version, the merge policy),
:mod:`.dense` (FAISS), :mod:`.keyword` (BM25 postings; bm25s only for its stop words),
:mod:`.copies` (syndicated copies), :mod:`.build` (the incremental builder),
:mod:`.shards` (a sharded index), :mod:`.live` (the published version, cached per
process). Imports rag.ingest, rag.embedding, rag.config and rag.types; nothing above.
"""
