"""Past one machine, on Ray (the ``distributed`` extra: ``pip install 'rag-quotes[distributed]'``).

* :mod:`rag.distributed.build`: the build's chunking and embedding on a Ray cluster
  (Ray Data, an actor pool running the project's own :func:`rag.index.build.embed_articles`);
  the index written is the one a local build writes, file for file.
* :mod:`rag.distributed.serve`: a sharded index (``python -m rag.build --shards N``) served
  by Ray Serve: a deployment per shard and a coordinator behind ``POST /api/ask``, with
  the single index's answers.

Nothing else in ``rag`` imports this package; without Ray it says how to install it.
"""

from __future__ import annotations

RAY_HINT = ("Ray is not installed: pip install 'rag-quotes[distributed]' "
            "(or run without --engine ray / without Ray Serve)")


def require_ray():
    """The ray module, or a RagError saying how to install it."""
    try:
        import ray
    except ImportError:
        from ..types import RagError

        raise RagError(RAY_HINT) from None
    return ray
