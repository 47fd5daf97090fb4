"""``koembed index / search / info / remove / compact``: thin commands over :mod:`koembed.index`
(:func:`build_index`, :func:`search` and :class:`Index`). Data goes to stdout, messages to stderr.

Nothing heavy is imported at module level; with the default backend (auto: onnx when installed) neither
``index`` nor ``search`` imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import typer

from koembed.cli.app import app
from koembed.errors import InputError
from koembed.index.build import IndexConfig
from koembed.index.modes import DEFAULT_FUSION, FUSIONS, MODES
from koembed.index.query import DEFAULT_K
from koembed.index.spec import ALIASES
from koembed.lexical.analysers import DEFAULT_ANALYSER

_D = {f.name: f.default for f in dataclasses.fields(IndexConfig)}  # input and output have none: required


FROM_VECTORS = "From vectors (--from-vectors only)"


@app.command("index")
def index_cmd(
    input: str | None = typer.Argument(None, help="Documents: .txt (a line each), .jsonl, .json (an array), .tsv, "
                                       ".csv, .parquet, a folder or a quoted pattern ('docs/*.jsonl'), or '-' (or "
                                       "none, with --from-vectors)."),
    output: str = typer.Option(..., "-o", "--output", help="Index directory (created, or upserted into)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the index's, else embedded)."),
    backend: str = typer.Option(_D["backend"], "--backend",
                                help="Inference backend: auto (onnx when installed), torch, onnx, onnx-int8."),
    index_type: str = typer.Option(_D["index_type"], "--index-type",
                                   help=f"{'|'.join(ALIASES)}|FAISS factory string."),
    fmt: str | None = typer.Option(_D["fmt"], "--format", help="txt|jsonl|json|tsv|csv|parquet (default: from "
                                   "suffix; a .txt that looks like a table is refused: pass tsv or txt)."),
    text_field: str = typer.Option(_D["text_field"], "--text-field", help="JSONL field / column holding the text."),
    id_field: str = typer.Option(_D["id_field"], "--id-field", help="JSONL field / column holding the id."),
    metadata_field: str = typer.Option(_D["metadata_field"], "--metadata-field",
                                       help="JSONL field holding metadata."),
    skip_bad: bool = typer.Option(_D["skip_bad"], "--skip-bad", help="Skip and count malformed records."),
    errors: str = typer.Option(_D["errors"], "--errors", help="strict|replace for undecodable bytes."),
    batch_size: int = typer.Option(_D["batch_size"], "--batch-size", min=1, help="Texts per forward pass."),
    chunk_size: int = typer.Option(_D["chunk_size"], "--chunk-size", min=1,
                                   help="Documents encoded and added at a time."),
    commit_every: int = typer.Option(_D["commit_every"], "--commit-every", min=1,
                                     help="Documents between commits (min)."),
    device: str | None = typer.Option(_D["device"], "--device", help="cpu, cuda, ... (torch backend)."),
    lexical: bool = typer.Option(_D["lexical"], "--lexical/--no-lexical",
                                 help="Give a new index a lexical (BM25) part for hybrid and lexical search."),
    analyser: str | None = typer.Option(_D["analyser"], "--analyser",
                                        help="Lexical analyser: bigram, bigram-runs, bigram-raw, kiwi "
                                             "(default: the index's, else bigram)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    from_vectors: list[str] | None = typer.Option(
        None, "--from-vectors", rich_help_panel=FROM_VECTORS,
        help="Build a new index from a vector set of `koembed encode --engine ray` instead "
        "of INPUT (repeatable; one model): shared quantiser, parts built in parallel, merged on disk."),
    engine: str = typer.Option("local", "--engine", rich_help_panel=FROM_VECTORS,
                               help="local: a process pool; ray: Ray tasks."),
    address: str | None = typer.Option(None, "--address", rich_help_panel=FROM_VECTORS,
                                       help="Ray cluster address (--engine ray)."),
    num_workers: int | None = typer.Option(None, "--num-workers", min=1, rich_help_panel=FROM_VECTORS,
                                           help="Parallel part builders (default: the cores)."),
    part_rows: int = typer.Option(1_000_000, "--part-rows", min=1, rich_help_panel=FROM_VECTORS,
                                  help="Vectors per part (unit of parallel work and of resume)."),
) -> None:
    """Index INPUT into DIR: stream encode -> add -> commit; rerun to resume or to upsert changes.

    With --from-vectors VECTORS_DIR: build DIR from vectors already encoded (docs/scale.md); rerun to resume.
    """
    if from_vectors:
        from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors

        if input is not None:
            raise InputError("pass documents (INPUT) or --from-vectors DIR, not both")
        result = build_index_from_vectors(VectorIndexConfig(
            vectors=list(from_vectors), output=output, index_type=index_type, engine=engine, address=address,
            num_workers=num_workers, part_rows=part_rows, lexical=lexical, analyser=analyser), quiet=quiet)
        if not quiet:
            print(result.summary(), file=sys.stderr)
            if result.lexical_cut:
                print(f"note: {lexical_cut_note(result.lexical_cut)}", file=sys.stderr)
        return
    if input is None:
        raise InputError("no documents given: pass INPUT (or --from-vectors DIR)")
    from koembed.index import build_index
    from koembed.index.modes import add_lexical_hint

    config = IndexConfig(input=input, output=output, model=model, backend=backend, index_type=index_type, fmt=fmt,
                         text_field=text_field, id_field=id_field, metadata_field=metadata_field, skip_bad=skip_bad,
                         errors=errors, batch_size=batch_size, chunk_size=chunk_size, commit_every=commit_every,
                         device=device, lexical=lexical, analyser=analyser)
    r = build_index(config, quiet=quiet)
    if not quiet:
        bad = f", {r.bad} bad skipped (first: {'; '.join(r.bad_locations)})" if r.bad else ""
        lex = f"lexical part: {r.analyser}" if r.analyser else "no lexical part"
        print(f"{r.directory}: {r.count} documents ({r.spec}; {lex}); read {r.read}, added {r.added}, replaced "
              f"{r.replaced}, unchanged {r.unchanged}, empty {r.empty}{bad}; {r.commits} commits in {r.seconds:.1f} s",
              file=sys.stderr)
        for note in build_notes(r):
            print(f"note: {note}", file=sys.stderr)
        if r.analyser is None and lexical:
            print(f"note: this index has no lexical part, so it searches in dense mode only; add one without "
                  f"re-encoding: {add_lexical_hint(r.directory)}", file=sys.stderr)


def lexical_cut_note(n: int) -> str:
    from koembed.index.lexical_part import MAX_CHARS

    return (f"{n} texts are longer than the lexical index reads ({MAX_CHARS:,} characters): words after that are "
            "not found by lexical search (the full text is stored and encoded)")


def build_notes(r: Any) -> list[str]:
    """What a build lost or merged, one line each (nothing when nothing was)."""
    notes = []
    if r.duplicates:
        notes.append(f"{r.duplicates} records repeat an earlier record's id, and the last one is kept (first: "
                     f"{'; '.join(r.duplicate_locations)})")
    if r.truncated:
        notes.append(f"{r.truncated} texts are longer than the model reads and were cut (the full text is stored)")
    if r.lexical_cut:
        notes.append(lexical_cut_note(r.lexical_cut))
    if r.unknown:
        notes.append(f"{r.unknown} texts hold words the model cannot read ([UNK]: characters outside its vocabulary "
                     "or a very long word); that part of their content is lost to search")
    return notes


# The table shows this many characters of a text (or an id, query or metadata); --json prints them whole.
TABLE_CELL_CHARS = 300


def _clip(text: str) -> str:
    return text if len(text) <= TABLE_CELL_CHARS else text[:TABLE_CELL_CHARS] + f"… (+{len(text) - TABLE_CELL_CHARS})"


def parse_filters(items: list[str] | None) -> dict[str, list[str]] | None:
    """``key=value`` pairs; a repeated key matches any of its values. The values stay strings: the store
    matches ``label=1`` against both "1" and 1 (:func:`koembed.index.store.filter_equivalents`)."""
    if not items:
        return None
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--filter {item!r}: expected key=value")
        out.setdefault(key, []).append(value)
    return out


@app.command("search")
def search_cmd(
    directory: str = typer.Argument(..., help="Index directory."),
    query: list[str] | None = typer.Argument(None, help="Query text(s)."),
    k: int = typer.Option(DEFAULT_K, "-k", min=1, help="Hits per query."),
    queries: str | None = typer.Option(None, "--queries", help="File with one query per line ('-' = stdin)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines (one per query) instead of a table."),
    filters: list[str] | None = typer.Option(None, "--filter", help="Metadata key=value (repeatable, all must hold)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the one in the manifest)."),
    backend: str | None = typer.Option(None, "--backend", help="Inference backend (default: auto; any backend "
                                       "searches an index another built)."),
    allow_model_mismatch: bool = typer.Option(False, "--allow-model-mismatch", help="Search with another model."),
    ef_search: int | None = typer.Option(None, "--ef-search", min=1, help="HNSW efSearch for this search."),
    nprobe: int | None = typer.Option(None, "--nprobe", min=1, help="IVF lists probed for this search."),
    mode: str | None = typer.Option(None, "--mode", help=f"{'|'.join(MODES)} (default: hybrid when the index "
                                    "has a lexical part, else dense). lexical loads no model."),
    dense_weight: float | None = typer.Option(None, "--dense-weight", min=0.0, max=1.0,
                                              help="Hybrid: the dense side's weight W in W*z(dense) + "
                                                   "(1-W)*c^2*z(lexical) (default: the weight the model records, "
                                                   "else 0.5)."),
    fusion: str = typer.Option(DEFAULT_FUSION, "--fusion", help=f"Hybrid fusion: {' or '.join(FUSIONS)} (coverage: "
                               "weighted standardised scores, the lexical side scaled by c^2, c the share of the "
                               "query its best match holds; convex: the same with c = 1; rrf: reciprocal ranks)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Search DIR for each query; prints a table, or JSON lines with --json."""
    from koembed.index import Index
    from koembed.index.query import Query, answer

    texts = list(query or [])
    if queries:
        from koembed.text import iter_lines

        texts += [line for line in iter_lines(queries) if line.strip()]
    if not texts:
        raise InputError("no queries given: pass a query text or --queries FILE")
    # One process, one search: mapping the FAISS file beats reading all of it first (issue 16).
    query = Query(texts=texts, k=k, mode=mode, fusion=fusion, dense_weight=dense_weight, filter=parse_filters(filters),
                  ef_search=ef_search, nprobe=nprobe)
    with Index.open(directory, mmap=True) as index:  # the model loads only when the mode needs it
        mode, results = answer(index, query, allow_model_mismatch=allow_model_mismatch, model=model, backend=backend)
    if as_json:
        for i, (q, hits) in enumerate(zip(texts, results, strict=True)):
            print(json.dumps({"query_index": i, "query": q, "mode": mode, "hits": [h.as_dict() for h in hits]},
                             ensure_ascii=False))
        return
    _print_tables(texts, results, hybrid=mode == "hybrid")
    if not quiet and any(not hits for hits in results):
        print("note: some queries had no hits (empty index or no document matches the filter)", file=sys.stderr)


def _print_tables(texts: list[str], results: list[list[Any]], hybrid: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout)
    signals = ("dense", "lexical") if hybrid else ()
    for q, hits in zip(texts, results, strict=True):
        table = Table(title=_clip(q), title_justify="left")
        for col in ("#", "score", *signals, "id", "text", "metadata"):
            table.add_column(col, overflow="fold")
        for rank, h in enumerate(hits, start=1):
            meta = json.dumps(h.metadata, ensure_ascii=False) if h.metadata else ""
            extra = [f"{getattr(h, s):.4f}" if getattr(h, s) is not None else "" for s in signals]
            table.add_row(str(rank), f"{h.score:.4f}", *extra, _clip(h.id), _clip(h.text), _clip(meta))
        console.print(table)


@app.command("info")
def info_cmd(
    directory: str = typer.Argument(..., help="Index directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Show an index's count, model, fingerprint, type, dimension and file sizes."""
    from koembed.index import Index

    with Index.open(directory, mmap=True) as index:
        info = index.info()
    if as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    model = info["model"]
    lines = [
        ("directory", info["directory"]), ("documents", info["count"]), ("index", info["spec"]),
        ("why", info["spec_reason"]), ("requested type", info["index_type"]), ("dimension", info["dim"]),
        ("metric", info["metric"]),
        ("model", model.get("name")), ("fingerprint", model.get("fingerprint")), ("backend", model.get("backend")),
        ("search defaults", json.dumps(info["search_defaults"])), ("vectors in FAISS", info["ntotal"]),
        ("tombstones", info["tombstones"]), ("generation", info["generation"]), ("created", info["created"]),
        ("updated", info["updated"]), ("size", f"{info['total_bytes'] / 1e6:.2f} MB"),
    ]
    lex = info.get("lexical")
    lines.insert(6, ("lexical", f"{lex['analyser']} (BM25 k1 {lex['k1']}, b {lex['b']}; {lex['vocabulary']} tokens, "
                                f"{lex['postings']} postings)" if lex else "none (dense search only; add it: "
                                f"koembed add-lexical {info['directory']})"))
    for key, value in lines:
        print(f"{key:18} {value}")
    width = max((len(name) for name in info["sizes"]), default=0)
    for name, size in info["sizes"].items():
        print(f"  {name:{width}} {size / 1e6:8.2f} MB  {info['roles'][name]}")


@app.command("remove")
def remove_cmd(
    directory: str = typer.Argument(..., help="Index directory."),
    ids: list[str] = typer.Argument(..., help="Document ids to remove."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stderr."),
) -> None:
    """Remove documents by id (unknown ids are reported, not an error)."""
    from koembed.index import Index

    with Index.open(directory, writable=True) as index:
        removed = index.remove(ids)
        left = index.count
    if not quiet:
        print(f"removed {removed} of {len(set(ids))} ids; {left} documents left", file=sys.stderr)


@app.command("compact")
def compact_cmd(
    directory: str = typer.Argument(..., help="Index directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stderr."),
) -> None:
    """Rebuild an index that keeps tombstones (HNSW) without its removed vectors."""
    from koembed.index import Index

    with Index.open(directory, writable=True) as index:
        dropped = index.compact()
    if not quiet:
        print(f"compacted: {dropped} removed vectors dropped", file=sys.stderr)


@app.command("add-lexical")
def add_lexical_cmd(
    directory: str = typer.Argument(..., help="Index directory."),
    analyser: str = typer.Option(DEFAULT_ANALYSER, "--analyser", help="bigram, bigram-runs, bigram-raw or kiwi."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
) -> None:
    """Give an index made without a lexical part one, from its stored texts: nothing is re-encoded."""
    from tqdm.auto import tqdm

    from koembed.index import Index

    with Index.open(directory, writable=True) as index:
        with tqdm(total=index.count, desc="tokenising", unit="doc", disable=quiet or not sys.stderr.isatty(),
                  file=sys.stderr) as bar:
            filled = index.add_lexical(analyser, progress=bar.update)
    if not quiet:
        print(f"{directory}: lexical part ({analyser}) " + (f"built from {filled.documents} stored documents"
                                                             if filled.documents else "already present"),
              file=sys.stderr)
        if filled.cut:
            print(f"note: {lexical_cut_note(filled.cut)}", file=sys.stderr)
