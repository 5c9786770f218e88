"""Embedding: the bundled all-MiniLM-L6-v2 behind one :func:`.model.get_embedder` (cfg).

:mod:`.model` (the embedder: torch or ONNX Runtime backends), :mod:`.weights` (where
the bundled weights and the cached ONNX exports are), :mod:`.onnx_runtime` (sessions over
the cached export), :mod:`.export` (the one-off torch -> ONNX export, run in a
subprocess; never imported at query time). Imports only rag.config and rag.types.
"""
