"""Render a results folder of :mod:`distill.bench.run` as the KoMiniLM table (Markdown) and a bar chart.

One row per model: #params, the average, then per task the mean +- standard deviation over seeds
(sample std, ddof=1; 0 with one seed). KorQuAD shows EM / F1. Cells trained on a local split are
marked with a dagger; missing or failed cells say so, with the reason in a footnote.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from distill.bench.tasks import TASKS
from koembed.atomic import atomic_path
from koembed.errors import InputError

LOCAL = "†"


def load_results(results_dir: str | Path) -> list[dict]:
    """Every result record under ``results_dir`` (files that are not valid JSON are reported, not skipped)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no such results folder (run 'python -m distill bench ... --output-dir {root}')")
    records = []
    for path in sorted(root.glob("*/*/seed-*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: unreadable result file ({exc}); delete it and rerun the bench") from None
    if not records:
        raise InputError(f"{root}: no result files (<model>/<task>/seed-N.json) found")
    return records


def _model_order(root: Path, records: list[dict]) -> list[str]:
    names = []
    config = root / "bench_config.json"
    if config.is_file():
        from distill.bench.run import model_label

        names = [model_label(m)[0] for m in json.loads(config.read_text(encoding="utf-8")).get("models", [])]
    seen = {r["model"] for r in records}
    return [n for n in names if n in seen] + sorted(seen - set(names))


def _task_order(records: list[dict]) -> list[str]:
    present = {r["task"] for r in records}
    return [t for t in TASKS if t in present] + sorted(present - set(TASKS))


def _fmt_params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.0f}M" if n >= 10e6 else f"{n / 1e6:.2f}M"


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarize(records: list[dict]) -> dict[str, dict[str, dict]]:
    """model -> task -> {status, means {metric: (mean, std)}, n, local, reason, params}."""
    grouped: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        grouped[r["model"]][r["task"]].append(r)
    out: dict[str, dict[str, dict]] = {}
    for model, tasks in grouped.items():
        out[model] = {}
        for task, rs in tasks.items():
            ok = [r for r in rs if r["status"] == "ok"]
            if ok:
                shown = ok[0]["shown"]
                out[model][task] = {
                    "status": "ok",
                    "means": {m: _mean_std([r["metrics"][m] for r in ok]) for m in shown},
                    "n": len(ok),
                    "local": any(r.get("split_kind") == "local split" for r in ok),
                    "params": ok[0].get("params"),
                }
            else:
                last = max(rs, key=lambda r: r.get("finished_at", ""))
                out[model][task] = {"status": last["status"], "reason": last.get("reason", "")}
    return out


def render_report(results_dir: str | Path) -> str:
    """The Markdown table (plus footnotes) for the results in ``results_dir``."""
    root = Path(results_dir)
    records = load_results(root)
    summary = summarize(records)
    models, tasks = _model_order(root, records), _task_order(records)
    titles = [TASKS[t].title if t in TASKS else t for t in tasks]
    max_seeds = max(c["n"] for m in summary.values() for c in m.values() if c["status"] == "ok") \
        if any(c["status"] == "ok" for m in summary.values() for c in m.values()) else 0
    notes: dict[str, int] = {}
    lines = ["| Model | #Params | Avg | " + " | ".join(titles) + " |", "|" + "---|" * (len(tasks) + 3)]
    for model in models:
        cells, task_scores, params = [], [], None
        for task in tasks:
            c = summary[model].get(task)
            if c is None:
                cells.append("-")
                continue
            if c["status"] != "ok":
                note = notes.setdefault(f"{task}: {c['status']}: {c['reason']}", len(notes) + 1)
                cells.append(f"{c['status']} [{note}]")
                continue
            params = params or c["params"]
            cell = " / ".join(f"{m:.2f} ± {s:.2f}" for m, s in c["means"].values())
            if c["local"]:
                cell += f" {LOCAL}"
            if c["n"] < max_seeds:
                cell += f" (n={c['n']})"
            cells.append(cell)
            task_scores.append(float(np.mean([m for m, _ in c["means"].values()])))
        avg = f"{np.mean(task_scores):.2f}" if task_scores else "-"
        if task_scores and len(task_scores) < len(tasks):
            avg += f" ({len(task_scores)}/{len(tasks)} tasks)"
        lines.append(f"| {model} | {_fmt_params(params)} | {avg} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± sample standard deviation over {max_seeds} seed(s); test-split scores of the checkpoint "
              "chosen on the dev split. Avg: mean over the tasks shown (KorQuAD counts once, as (EM + F1) / 2). "
              "#Params: backbone (embeddings + encoder), no task head."]
    if any(c.get("local") for m in summary.values() for c in m.values()):
        lines.append(f"{LOCAL} local split: this machine has no train file for the task, so it was trained on part of "
                     "its dev file and tested on the test file (or on a held-out part of dev); not comparable to "
                     "published numbers.")
    settings = {json.dumps(r.get("settings", {}), sort_keys=True) for r in records}
    if len(settings) == 1:
        s = {k: v for k, v in json.loads(settings.pop()).items() if v is not None}
        lines.append("Overrides of the task defaults: " + (", ".join(f"{k}={v}" for k, v in s.items()) or "none") + ".")
    for text, number in notes.items():
        lines.append(f"[{number}] {text}")
    return "\n".join(lines) + "\n"


def plot_report(results_dir: str | Path, output: str | Path) -> Path:
    """A grouped bar chart (one group per task, one bar per model; error bars = std over seeds) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(results_dir)
    records = load_results(root)
    summary = summarize(records)
    models, tasks = _model_order(root, records), _task_order(records)
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks)), 4.0))
    x = np.arange(len(tasks))
    for i, model in enumerate(models):
        means, stds = [], []
        for task in tasks:
            c = summary[model].get(task, {})
            metric = TASKS[task].metric if task in TASKS else None
            m, s = c.get("means", {}).get(metric, (np.nan, 0.0)) if c.get("status") == "ok" else (np.nan, 0.0)
            means.append(m)
            stds.append(s)
        ax.bar(x + (i - (len(models) - 1) / 2) * width, means, width, yerr=stds, label=model, capsize=2)
    ax.set_xticks(x, [TASKS[t].title if t in TASKS else t for t in tasks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score (x100); missing tasks left empty")
    lowest = min([0.0] + [c["means"][TASKS[t].metric][0] for m in summary.values() for t, c in m.items()
                          if c["status"] == "ok" and t in TASKS])
    ax.set_ylim(lowest - 5 if lowest < 0 else 0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return output
