"""Which pip extra installs an optional module, and the one-line error that says so.

``pip install koembed`` is the inference stack (ONNX Runtime, tokenizers, FAISS, numpy, typer): index,
search, encode, serve's core and eval of models with an ONNX graph. The rest is in extras
(``pyproject.toml``, docs/install.md). Code that imports an optional module either calls
:func:`require` first or lets the import fail: the CLI turns a ``ModuleNotFoundError`` for a module
named here into ``error: ... pip install 'koembed[EXTRA]'`` (exit 5) through :func:`missing_extra`.
"""

from __future__ import annotations

import importlib.util

from koembed.errors import MissingExtraError

# top-level module -> (extra, what needs it)
EXTRA_OF: dict[str, tuple[str, str]] = {
    "torch": ("torch", "the torch backend (--backend torch, a GPU, or a model no ONNX graph reproduces)"),
    "transformers": ("torch", "the torch backend"),
    "sentence_transformers": ("torch", "the torch backend"),
    "onnx": ("export", "exporting a model to ONNX (first use of a model folder without a shipped graph)"),
    "onnxscript": ("export", "exporting a model to ONNX"),
    "datasets": ("train", "training and Hugging Face hub data"),
    "accelerate": ("train", "training"),
    "seqeval": ("distill", "the distillation benchmark"),
    "matplotlib": ("distill", "plots"),
    "sklearn": ("distill", "the TF-IDF baseline and word vectors"),
    "pyarrow": ("parquet", ".parquet input and output"),
    "fastapi": ("serve", "koembed serve"),
    "uvicorn": ("serve", "koembed serve"),
    "kiwipiepy": ("kiwi", "the 'kiwi' analyser"),
    "ray": ("scale", "--engine ray and sharded builds"),
    "langchain_core": ("langchain", "the LangChain retriever"),
    "llama_index": ("llamaindex", "the LlamaIndex retriever"),
}
# What the export path needs on top of the torch backend: exporting a new model needs both extras' modules.
EXPORT_MODULES = ("torch", "transformers", "onnx")


def install_hint(extra: str) -> str:
    return f"pip install 'koembed[{extra}]'"


# A command whose extra includes others': `koembed train` missing torch asks for [train], not [torch].
COMMAND_EXTRAS: dict[str, tuple[str, set[str]]] = {
    "train": ("koembed train", {"torch", "train", "parquet"}),
    "distill": ("the distillation recipe", {"torch", "export", "train", "distill", "parquet"}),
}


def missing_extra(exc: BaseException, command: str | None = None) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for an import that failed because an extra is not installed, else None.

    ``command`` (a key of :data:`COMMAND_EXTRAS`) names the extra of the command that was running.
    """
    name = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or not name:
        return None
    top = name.split(".")[0]
    if top not in EXTRA_OF:
        return None
    extra, what = EXTRA_OF[top]
    if command in COMMAND_EXTRAS and extra in COMMAND_EXTRAS[command][1]:
        what, extra = COMMAND_EXTRAS[command][0], command
    return MissingExtraError(f"{what} needs {top}, which is not installed: {install_hint(extra)}")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (looked up without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(*modules: str, what: str | None = None, extra: str | None = None) -> None:
    """Raise :class:`MissingExtraError` naming the extra when any of ``modules`` is not installed."""
    missing = [m for m in modules if not installed(m)]
    if not missing:
        return
    extra = extra or EXTRA_OF[missing[0]][0]
    what = what or EXTRA_OF[missing[0]][1]
    raise MissingExtraError(f"{what} needs {', '.join(missing)}, not installed: {install_hint(extra)}")
