"""The end-to-end recipe (``python -m distill recipe nano``): corpus to shipped default model.

- :mod:`~distill.recipe.run`: :class:`RecipeConfig` and the resumable stages of :class:`Recipe`.
- :mod:`~distill.recipe.corpus`: the raw-text sources of the tokenizer, MLM and distillation stages.
- :mod:`~distill.recipe.package`: copying the sentence model into ``koembed/models/`` with its card.
- :mod:`~distill.recipe.commands`: the CLI command; ``recipes/`` holds the committed recipes as JSON.

It orchestrates distillation (:mod:`distill.mlm`, :mod:`distill.minilm`), koembed's sentence
training and evaluation, and the benchmark suite (:mod:`distill.bench`).
"""
