"""A sharded index served by Ray Serve, behind the same HTTP API and UI as ``rag-serve``.

Deployments (one Serve application, default name ``rag``):

* ``shard-000`` ... ``shard-N``: one per shard, each a
  :class:`~rag.answer.shards.ShardReader` (``shard_replicas`` replicas each, for
  throughput); a replica loads the shard versions the coordinator names.
* ``coordinator`` (the ingress; ``replicas`` replicas): the web app of
  :func:`rag.app.web.create_app` (``POST /api/ask``, the other routes, the UI), whose
  questions are answered by :class:`~rag.answer.shards.ShardedIndex` over the shard
  deployments' handles: the question is embedded once, here; every shard returns its
  dense and keyword top n; the coordinator fuses them with the same RRF and total order
  and runs the same answer selection. Answers equal the single index's.

Each coordinator replica reads ``CLUSTER`` at every question and switches to a newly
published cluster version on its own; shard replicas load the versions they are asked
for. Run::

    python -m rag.distributed.serve --index index/ [--address auto] [--port 8000]

The shard folders must be readable where the shard replicas run (one machine, or a
shared filesystem).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import Config
from ..index.shards import read_cluster, shard_name
from . import require_ray

APP_NAME = "rag"


class RayShards:
    """Shard calls through Ray Serve deployment handles (the ``shards`` of
    :class:`~rag.answer.shards.ShardedIndex`): the calls of one step go out together."""

    def __init__(self, handles: list, timeout_s: float = 60.0) -> None:
        self.handles = list(handles)
        self.timeout_s = timeout_s

    def call(self, method: str, args: list[tuple], shards: list[int] | None = None) -> list:
        shards = range(len(self.handles)) if shards is None else shards
        pending = [getattr(self.handles[i], method).remote(*a) for i, a in zip(shards, args)]
        return [p.result(timeout_s=self.timeout_s) for p in pending]


def build_app(index_dir: str | Path | None = None, config: Config | None = None,
              replicas: int = 1, shard_replicas: int = 1, ui: bool = True):
    """The Serve application for the sharded index in ``index_dir`` (its shard count is
    read now; a build with another count needs a redeploy)."""
    require_ray()
    from ray import serve

    from ..answer.shards import ShardReader

    cfg = (config or Config.from_env()).replace(
        index_dir=Path(index_dir) if index_dir is not None else None)
    root = Path(cfg.index_dir).resolve()
    cfg = cfg.replace(index_dir=root)
    _, manifest = read_cluster(root)

    @serve.deployment(num_replicas=shard_replicas, ray_actor_options={"num_cpus": 0})
    class Shard:
        """One shard's :class:`ShardReader`, its methods callable through a handle."""

        def __init__(self, shard_dir: str, config: Config) -> None:
            self.reader = ShardReader(shard_dir, config)

        def stats(self, *args):
            return self.reader.stats(*args)

        def retrieve(self, *args):
            return self.reader.retrieve(*args)

        def fetch(self, *args):
            return self.reader.fetch(*args)

        def doc_freqs(self, *args):
            return self.reader.doc_freqs(*args)

        def article(self, *args):
            return self.reader.article(*args)

        def dated(self, *args):
            return self.reader.dated(*args)

        def pid(self) -> int:
            import os

            return os.getpid()

    def asgi():
        from ..app.web import create_app

        return create_app(cfg, ui=ui)

    @serve.deployment(name="coordinator", num_replicas=replicas,
                      ray_actor_options={"num_cpus": 0})
    @serve.ingress(asgi)
    class Coordinator:
        def __init__(self, *shards) -> None:
            from ..answer.pipeline import serve_shards_through

            serve_shards_through(root, RayShards(shards))

    return Coordinator.bind(*[
        Shard.options(name=shard_name(i)).bind(str(root / shard_name(i)), cfg)
        for i in range(int(manifest["shards"]))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag.distributed.serve",
        description="Serve a sharded index (python -m rag.build --shards N) on Ray Serve: "
                    "a deployment per shard and a coordinator with the web app and API.")
    parser.add_argument("--index", help="the sharded index folder (default: $RAG_INDEX)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto' for the running one; default: "
                             "start a local one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="HTTP address (default 127.0.0.1; beyond loopback set "
                             "RAG_API_TOKEN)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--replicas", type=int, default=1, help="coordinator replicas")
    parser.add_argument("--shard-replicas", type=int, default=1, help="replicas per shard")
    parser.add_argument("--no-ui", action="store_true", help="the API only")
    args = parser.parse_args(argv)
    from ..types import RagError

    try:
        ray = require_ray()
        from ray import serve

        cfg = Config.from_env(index_dir=args.index)
        from ..app.security import check_bind

        try:  # the web app's one rule: loopback, or a token of 16+ characters
            check_bind(args.host, cfg.api_token or None)
        except RagError as exc:
            print(f"rag.distributed.serve: error: {exc}", file=sys.stderr)
            return 2
        app = build_app(config=cfg, replicas=args.replicas,
                        shard_replicas=args.shard_replicas, ui=not args.no_ui)
        ray.init(address=args.address, include_dashboard=False, configure_logging=False)
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name=APP_NAME, route_prefix="/")
        print(f"serving {cfg.index_dir} on http://{args.host}:{args.port} (Ctrl-C stops)",
              file=sys.stderr)
        import time

        while True:
            time.sleep(3600)
    except RagError as exc:
        print(f"rag.distributed.serve: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
