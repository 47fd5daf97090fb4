"""The Korean benchmark suite (``python -m distill bench`` / ``report``): fine-tune backbones on the KoMiniLM tasks.

- :mod:`~distill.bench.tasks`: the tasks of :mod:`koembed.data.tasks` with fine-tuning defaults (head, metric,
  hyperparameters); their data sets are in :mod:`koembed.data.catalogue`.
- :mod:`~distill.bench.task_data`: reading each task's data set and cutting train / dev / test.
- :mod:`~distill.bench.finetune`: one fine-tuning run per (model, task, seed) with the Trainer.
- :mod:`~distill.bench.metrics`: accuracy, entity F1 and KorQuAD EM/F1 (correlations: :mod:`koembed.stats`).
- :mod:`~distill.bench.run`: the resumable models x tasks x seeds loop, one result JSON per run.
- :mod:`~distill.bench.report`: the Markdown table and bar chart of a results folder.
- :mod:`~distill.bench.commands`: the CLI commands over them.

It uses nothing of distillation: any BERT-like folder or Hub id can be benchmarked.
"""
