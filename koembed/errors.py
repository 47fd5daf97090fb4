"""Errors that koembed reports to users as one line, never as a traceback.

Every error a user can cause (bad input, a missing model, a refused index write) is a
``KoembedError``; the CLI prints ``error: <message>`` and exits with ``exit_code``.
"""

from __future__ import annotations


class KoembedError(Exception):
    """Base class: the message alone must tell the user what went wrong and what to do."""

    exit_code = 1


class InputError(KoembedError):
    """A user-supplied file or value is unusable (missing, not UTF-8, malformed)."""

    exit_code = 2


class ModelNotFoundError(KoembedError):
    """Neither a local folder nor a Hub id could be resolved to a model."""

    exit_code = 3


class IndexRefusedError(KoembedError):
    """An index operation would mix models/dimensions or read a corrupt file; nothing was changed."""

    exit_code = 4


class MissingExtraError(KoembedError):
    """An optional dependency is not installed; the message names the pip extra."""

    exit_code = 5


class WriteError(KoembedError):
    """A write failed for a reason outside koembed (disk full, read-only file or folder); nothing was lost."""

    exit_code = 6


class Terminated(BaseException):  # named for the signal, like KeyboardInterrupt
    """SIGTERM arrived: raised (by the CLI's handler) so that ``finally`` blocks clean up as on Ctrl-C.

    A ``BaseException``, like ``KeyboardInterrupt``, so ``except Exception`` blocks do not swallow it.
    """

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a process the signal killed
