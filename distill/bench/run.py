"""Run the benchmark suite: models x tasks x seeds, one JSON result per triple, resumable.

Layout of ``output_dir``::

    bench_config.json                      the BenchConfig of the latest run
    <model>/<task>/seed-<seed>.json        one result (status ok / missing / failed)

A triple whose result file says ``ok`` with the same settings is skipped, so an interrupted suite
picks up where it stopped (a triple cut off mid-training starts again from its beginning). Missing
data and failures are recorded, never dropped, and retried on the next run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from distill.bench.finetune import FinetuneConfig, finetune
from distill.bench.task_data import TaskData, TaskDataMissing, load_task
from distill.bench.tasks import Task, parse_tasks
from koembed.atomic import atomic_write_text
from koembed.errors import InputError, KoembedError
from koembed.model_source import resolve_model
from koembed.paths import data_dir as resolve_data_dir
from koembed.system import cpu_count, is_main_process

RESULT_VERSION = 1
SEED_BASE = 42  # seeds are 42, 43, 44, ... as in KoMiniLM-Finetune's default seed 42


@dataclass
class BenchConfig:
    """What ``python -m distill bench`` runs. ``models`` entries are paths or Hub ids, optionally ``label=path``."""

    models: list[str]
    output_dir: str = "bench-results"  # resumed when it already holds results
    tasks: str = "all"  # "all" (the seven seed tasks), "extras", "every", or "nsmc,korsts,..."
    seeds: int = 3
    max_train_samples: int | None = None
    max_eval_samples: int | None = None  # caps dev and test alike
    epochs: float | None = None  # overrides each task's default
    max_length: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    data_dir: str | None = None  # default: koembed.paths.data_dir(); one given must exist
    use_hub: bool = True  # fall back to the task's Hub dataset when local files are missing
    device: str | None = None  # "cpu" to ignore a GPU
    quiet: bool = False
    keep_going: bool = True  # record a failed run and continue with the next one

    def settings(self) -> dict:
        """The fields that change a result; a resumed run must match them."""
        keys = ("max_train_samples", "max_eval_samples", "epochs", "max_length", "batch_size", "learning_rate")
        return {k: getattr(self, k) for k in keys}


def model_label(spec: str) -> tuple[str, str]:
    """``label=path`` -> (label, path); a bare path or Hub id is labelled by itself."""
    label, sep, path = spec.partition("=")
    if sep and label and path:
        return label, path
    return spec.rstrip("/"), spec


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label.replace("/", "__")).strip("_") or "model"


def result_path(output_dir: str | Path, label: str, task: str, seed: int) -> Path:
    return Path(output_dir) / _slug(label) / task / f"seed-{seed}.json"


def finetune_config(task: Task, config: BenchConfig, seed: int) -> FinetuneConfig:
    h = task.hyper
    # Batch sizes are totals, as in KoMiniLM-Finetune: under torchrun each of WORLD_SIZE ranks takes its share.
    world = _world_size()
    return FinetuneConfig(
        max_length=config.max_length or h.max_length,
        epochs=config.epochs or h.epochs,
        batch_size=max(1, (config.batch_size or h.batch_size) // world),
        learning_rate=config.learning_rate or h.learning_rate,
        stride=h.stride,
        seed=seed,
        device=config.device,
        quiet=config.quiet,
    )


def versions() -> dict:
    import datasets
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "machine": platform.machine(),
        "cpus": cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def _log(config: BenchConfig, message: str) -> None:
    if not config.quiet:
        print(message, file=sys.stderr, flush=True)


def run_bench(config: BenchConfig) -> Path:
    """Run every (model, task, seed) of ``config`` not finished yet; return the results folder."""
    if config.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {config.seeds}")
    tasks = parse_tasks(config.tasks)
    models = [model_label(m) for m in config.models]
    if not models:
        raise InputError("no model given: pass one or more model folders or Hub ids")
    labels = [label for label, _ in models]
    if len(set(map(_slug, labels))) != len(labels):
        raise InputError(f"two models share a name ({', '.join(labels)}); label them as name=path")
    sources = {label: resolve_model(path) for label, path in models}  # fail before any training
    data_root = resolve_data_dir(config.data_dir)  # one given must exist: never another folder's data
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        atomic_write_text(out / "bench_config.json", json.dumps(asdict(config), indent=2, ensure_ascii=False) + "\n")
    env = versions()
    cache: dict[str, TaskData | TaskDataMissing] = {}
    seeds = [SEED_BASE + i for i in range(config.seeds)]
    total, done = len(models) * len(tasks) * len(seeds), 0
    for label, _ in models:
        for task in tasks:
            for seed in seeds:
                done += 1
                path = result_path(out, label, task.name, seed)
                prefix = f"[{done}/{total}] {label} {task.name} seed {seed}"
                if _finished(path, config):
                    _log(config, f"{prefix}: done before, skipped")
                    continue
                if task.name not in cache:
                    cache[task.name] = _load(task, data_root, config)
                record = _run_one(label, str(sources[label].path), task, seed, cache[task.name], config, path.parent)
                record["versions"] = env
                if is_main_process():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
                _log(config, f"{prefix}: {_summary(record)}")
    return out


def _finished(path: Path, config: BenchConfig) -> bool:
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # unreadable: run it again and overwrite
    if old.get("status") != "ok":
        return False
    if old.get("settings") != config.settings():
        raise InputError(
            f"{path}: made with other settings ({old.get('settings')} vs {config.settings()}); "
            "use another --output-dir or delete the old results"
        )
    return True


def _load(task: Task, data_root: Path, config: BenchConfig) -> TaskData | TaskDataMissing:
    try:
        return load_task(task, data_root, config.max_train_samples, config.max_eval_samples, use_hub=config.use_hub)
    except TaskDataMissing as exc:
        return exc


def _run_one(label: str, model_path: str, task: Task, seed: int, data: TaskData | TaskDataMissing,
             config: BenchConfig, folder: Path) -> dict:
    record = {
        "result_version": RESULT_VERSION,
        "model": label,
        "model_path": model_path,
        "task": task.name,
        "title": task.title,
        "seed": seed,
        "metric": task.metric,
        "shown": list(task.shown),
        "settings": config.settings(),
        "world_size": _world_size(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if isinstance(data, TaskDataMissing):
        return record | {"status": "missing", "reason": data.reason}
    record |= {"split_kind": data.split_kind, "split_note": data.split_note,
               "malformed_rows": data.report.total_bad, "rows": data.report.summary().splitlines()}
    ft = finetune_config(task, config, seed)
    work = folder / f".work-seed-{seed}"
    try:
        result = finetune(model_path, data, ft, work)
    except KoembedError:
        raise
    except Exception as exc:
        if not config.keep_going:
            raise
        first_line = (str(exc).splitlines() or [""])[0][:200]
        return record | {"status": "failed", "reason": f"{type(exc).__name__}: {first_line}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record | {"status": "ok"} | result


def _summary(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['status']}: {record.get('reason', '')}"
    values = ", ".join(f"{k} {record['metrics'][k]:.2f}" for k in record["shown"])
    return f"{values} ({record['split_kind']}, {record['seconds']:.0f} s)"
