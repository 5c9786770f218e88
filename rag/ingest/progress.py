"""Progress bars that suit where they are written.

On a terminal, tqdm's bar, redrawn in place. Anywhere else (a server's log, a pipe, a
file, ``--watch`` output captured by a service manager) a redrawn bar is a stream of
carriage returns that fills the log, so there :class:`PlainLines` writes one plain line
when the bar starts, at most one every :data:`PLAIN_EVERY` seconds, and one at the end.
Both are tqdm instances, so Gradio's ``track_tqdm`` follows them alike.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Iterable

from tqdm.auto import tqdm

PLAIN_EVERY = 30.0  # seconds between two plain progress lines


class PlainLines(tqdm):
    """A tqdm bar that writes whole lines (``desc: 40%|####  | 8/20 [...]\\n``) instead of
    redrawing one: never a carriage return or a cursor movement."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if not msg and msg is not None:  # tqdm clears with msg="": nothing to clear in a log
            return False  # (and then writes no "\r" after it)
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        return True

    def clear(self, nolock: bool = False) -> None:
        pass

    def close(self) -> None:
        # the last line, then tqdm's own close without its own (it would add "\n")
        if not self.disable and getattr(self, "last_print_n", None) != self.n:
            self.display()
        self.leave = False
        super().close()


def is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True,
                 stream: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update()``) writing to ``stream``
    (default: ``sys.stderr`` now): tqdm's own on a terminal, :class:`PlainLines`
    elsewhere, a disabled one when not ``enabled``. ``kwargs`` go to tqdm (desc, unit,
    total)."""
    stream = stream or sys.stderr
    if not enabled:
        return tqdm(iterable, disable=True, file=stream, **kwargs)
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    return PlainLines(iterable, file=stream, mininterval=PLAIN_EVERY, ascii=True,
                      dynamic_ncols=False, ncols=80, **kwargs)
