"""The name an index records for its model, and the name a server shows: never a path where a name exists.

A model koembed can name (the embedded ``kominilm-e5-ko`` in the package's ``models/`` folder, the
imported ``e5-small``/``e5-small-ko`` in ``cache_dir()/models``) is recorded by that name, not by where
this environment happens to keep it: an index built in one venv is then searched from another venv, a
container or another user's account, where :func:`koembed.model_source.resolve_model` finds the same
name in that environment's own place, and the fingerprint recorded beside the name checks that the
vectors are the same. A manifest written before names were recorded holds the absolute path of such
a model (``.../site-packages/koembed/models/kominilm-nano-sts``); it is read as the name.

Other models keep what the user gave: a Hub id, or a local folder as an absolute path (a folder of
one's own has no name koembed could resolve elsewhere). :func:`public_model_name` is what an HTTP
response says: the name, or a folder's last part (a server does not tell clients its file system).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

# The tail every koembed-named model's folder has: the package's models/ folder or the cache's (~/.cache/koembed).
_NAMED_PARENT = ("koembed", "models")


def named_models() -> set[str]:
    """The names koembed resolves without a folder (:func:`koembed.model_source.model_names`)."""
    from koembed.model_source import model_names

    return set(model_names())


def stable_model_name(name: str | None) -> str | None:
    """``name`` as an index records it: a koembed-named model's name instead of its folder, else unchanged."""
    if not isinstance(name, str) or not os.path.isabs(name):  # None, a name, a Hub id (or a corrupt value: kept)
        return name
    path = PurePath(name)
    if path.parent.parts[-2:] == _NAMED_PARENT and path.name in named_models():
        return path.name
    try:  # a link or another spelling of the package's own folder
        from koembed.model_source import PACKAGE_MODELS

        real = Path(name).resolve()
        if real.parent == PACKAGE_MODELS.resolve() and real.name in named_models():
            return real.name
    except OSError:
        pass
    return name


def public_model_name(name: str | None) -> str | None:
    """What a server says its model (or an index's) is: the stable name, or a local folder's last part."""
    stable = stable_model_name(name)
    if isinstance(stable, str) and os.path.isabs(stable):
        return PurePath(stable).name
    return stable
