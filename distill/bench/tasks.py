"""The benchmark's view of the one task registry (:mod:`koembed.data.tasks`): the tasks with fine-tuning defaults.

A task names its catalogued data set (files per split relative to the data folder, the reader, the Hub
dataset used when the files are absent: :mod:`koembed.data.catalogue`), the head (KorSTS-style ``sts``
tasks train a regression head; classification, token classification, extractive QA), the metric, and
the default hyperparameters of KoMiniLM-Finetune (max length / epochs / batch / lr).

Splits: where ``dev`` is absent it is carved from train; where ``train`` is absent (this machine lacks
KorNLI, PAWS-X and KorQuAD train files) a *local split* trains on part of dev and tests on ``test`` (or
on a held-out part of dev when there is no test file either). The rule lives in
:func:`distill.bench.task_data.load_task`.
"""

from __future__ import annotations

from koembed.data.catalogue import find_dataset
from koembed.data.tasks import TASKS as ALL_TASKS
from koembed.data.tasks import Hyper, Task, find_task
from koembed.errors import InputError
from koembed.registry import Registry

HEADS = ("classification", "regression", "token", "qa")

TASKS: Registry[Task] = Registry("benchmark task", ((n, t) for n, t in ALL_TASKS.items() if t.hyper is not None))
SEED_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.seed_task)
EXTRA_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if not t.seed_task)
_GROUPS = "; or a group: 'all', 'extras', 'every'"

__all__ = ["EXTRA_TASKS", "HEADS", "SEED_TASKS", "TASKS", "Hyper", "Task", "describe_tasks", "get_task", "parse_tasks"]


def get_task(name: str) -> Task:
    """The task called ``name`` (case and ``_``/``-`` ignored); a typo gets the nearest registered names suggested."""
    try:
        task = find_task(name)
    except InputError as exc:
        raise InputError(f"{exc}{_GROUPS}") from None
    if task.name not in TASKS:
        raise InputError(f"{task.name} is a sentence-evaluation task without fine-tuning defaults (run it with "
                         f"koembed eval); benchmark tasks: {', '.join(TASKS)}{_GROUPS}")
    return task


def parse_tasks(spec: str | list[str] | tuple[str, ...]) -> list[Task]:
    """``all`` (the seven seed tasks), ``extras``, ``every``, or a comma-separated list of names."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Task] = []
    for raw in (n.strip() for n in names):
        if not raw:
            continue
        group = {"all": SEED_TASKS, "extras": EXTRA_TASKS, "every": tuple(TASKS)}.get(raw.lower())
        for task in [TASKS[n] for n in group] if group else [get_task(raw)]:
            if task not in out:
                out.append(task)
    if not out:
        raise InputError(f"--tasks {spec!r} names no task; known tasks: {', '.join(TASKS)}")
    return out


def describe_tasks() -> str:
    """One line per task for ``bench --list-tasks``: head, metric, defaults, data set and its files."""
    lines = []
    for t in TASKS.values():
        h = t.hyper
        hp = f"len {h.max_length}" + (f" stride {h.stride}" if h.stride else "")
        hp += f", {h.epochs:g} ep, batch {h.batch_size}, lr {h.learning_rate:g}"
        ds = find_dataset(t.dataset)
        files = ", ".join(f"{s}={p}" for s, p in ds.files) + (f" (Hub: {ds.hub.path})" if ds.hub else "")
        tag = "" if t.seed_task else " [extra]"
        lines.append(f"{t.name:<14} {t.head:<14} {t.metric:<9} {hp:<42} {files}{tag}")
    return "\n".join(lines)
