"""Ingest: files and records -> Article (:mod:`.loaders`), Article -> passages and
sentences with exact character offsets (:mod:`.chunking`). Imports only rag.types."""
