"""Lexical (BM25) search beside the dense vectors of an index, and the fusion of the two.

Modules: :mod:`~koembed.lexical.analysers` (Korean text -> tokens, named), :mod:`~koembed.lexical.tables`
(each document's token ids in the index's SQLite store, committed with the documents),
:mod:`~koembed.lexical.bm25` (the BM25 matrix file of a generation, and top-k search over it),
:mod:`~koembed.lexical.fusion` (convex combination of standardised scores, RRF). docs/search.md says
why the engine is what it is, with the measurements.
"""
