"""Ctrl-C from the first instant of a command: one line and exit 130, never a traceback.

The handler is installed before anything heavy is imported (typer, the command modules, ONNX Runtime),
so a Ctrl-C during start-up is caught like one during the work. It also records that it fired: some
libraries turn a ``KeyboardInterrupt`` raised inside their import into an ``ImportError`` (which would
read as "need onnxruntime"), so any failure after a Ctrl-C is reported as the interruption it was.
Only ``signal`` is imported here: this module loads in the first milliseconds of every command.
"""

from __future__ import annotations

import signal
from typing import Any

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
INTERRUPTED_MESSAGE = "interrupted (Ctrl-C); files are as they were before the command or at its last commit"
_fired = False


def _handler(signum: int, frame: object) -> None:
    global _fired
    _fired = True
    raise KeyboardInterrupt


def install() -> Any:
    """Make SIGINT raise ``KeyboardInterrupt`` (as Python's default does) and remember that it came.

    Returns the previous handler, for :func:`restore` (None off the main thread, where nothing changes).
    """
    global _fired
    _fired = False
    try:
        return signal.signal(signal.SIGINT, _handler)
    except ValueError:  # not the main thread: signals are the main thread's
        return None


def restore(previous: Any) -> None:
    """Put back the handler :func:`install` replaced (a program calling ``main`` in-process keeps its own)."""
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def fired() -> bool:
    """True once a Ctrl-C has arrived since :func:`install`."""
    return _fired


def quiet_exit() -> None:
    """The command has answered: a Ctrl-C during the interpreter's shutdown just ends the process, silently."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except ValueError:
        pass
