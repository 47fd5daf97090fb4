"""A BM25 search engine for Korean text, and the fusion of its scores with dense ones; no index inside.

Modules: :mod:`~koembed.lexical.analysers` (Korean text -> tokens, named), :mod:`~koembed.lexical.bm25`
(the BM25 matrix, its safetensors file, and top-k search over it), :mod:`~koembed.lexical.engine` (BM25
over texts in memory, as ``bm25s`` is), :mod:`~koembed.lexical.fusion` (convex combination of
standardised scores, RRF; the fusion names and the dense-weight check). Nothing here imports
:mod:`koembed.index`: an index keeps its lexical part with these pieces (:mod:`koembed.index.lexical_part`,
:mod:`koembed.index.lexical_tables`). docs/search.md says why the engine is what it is, with the measurements.
"""
