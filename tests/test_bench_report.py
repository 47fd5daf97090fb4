"""The Markdown table and the chart, rendered from fixed result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.bench.report import load_results, plot_report, render_report
from koembed.errors import InputError


def _write(root: Path, model: str, task: str, seed: int, **fields) -> None:
    from distill.bench.tasks import TASKS

    t = TASKS[task]
    record = {"model": model, "task": task, "seed": seed, "metric": t.metric, "shown": list(t.shown),
              "settings": {"max_train_samples": 100}, "finished_at": f"2026-01-01T00:00:0{seed % 10}"} | fields
    path = root / model / task / f"seed-{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record), encoding="utf-8")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "res"
    for i, acc in enumerate([80.0, 82.0, 84.0]):
        _write(root, "big", "nsmc", 42 + i, status="ok", split_kind="full", metrics={"accuracy": acc},
               params=68_000_000)
        _write(root, "big", "korquad", 42 + i, status="ok", split_kind="local split",
               metrics={"exact_match": 60.0 + i, "f1": 70.0 + i}, params=68_000_000)
        _write(root, "big", "naver-ner", 42 + i, status="missing", reason="no data: naver-ner/train_data not found")
    for i, acc in enumerate([70.0, 72.0]):  # the small model has 2 seeds of NSMC and nothing else yet
        _write(root, "small", "nsmc", 42 + i, status="ok", split_kind="full", metrics={"accuracy": acc},
               params=230_000)
    _write(root, "small", "korquad", 42, status="failed", reason="RuntimeError: out of memory")
    (root / "bench_config.json").write_text(json.dumps({"models": ["small=/m/small", "big=/m/big"]}))
    return root


def test_table_shape_and_values(results: Path) -> None:
    table = render_report(results)
    lines = table.splitlines()
    assert lines[0] == "| Model | #Params | Avg | NSMC (acc) | Naver NER (F1) | KorQuAD (EM/F1) |"
    small, big = lines[2], lines[3]  # order from bench_config.json
    assert small.startswith("| small | 0.23M | 71.00 (1/3 tasks) | 71.00 ± 1.41 (n=2) | - | failed [")
    # nsmc mean 82 std 2; KorQuAD EM 61 +- 1 / F1 71 +- 1 on a local split; avg = (82 + (61 + 71) / 2) / 2
    assert big.startswith("| big | 68M | 74.00 (2/3 tasks) | 82.00 ± 2.00 | missing [")
    assert "61.00 ± 1.00 / 71.00 ± 1.00 †" in big
    assert "naver-ner: missing: no data: naver-ner/train_data not found" in table
    assert "korquad: failed: RuntimeError: out of memory" in table
    assert "† local split" in table and "max_train_samples=100" in table


def test_plot_is_a_png(results: Path, tmp_path: Path) -> None:
    out = plot_report(results, tmp_path / "chart.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_errors_and_cli(results: Path, tmp_path: Path, capsys) -> None:
    from distill.cli import main

    with pytest.raises(InputError, match="no such results folder"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no result files"):
        load_results(tmp_path / "empty")
    assert main(["report", str(results), "--plot", str(tmp_path / "c.png")]) == 0
    assert "| big | 68M |" in capsys.readouterr().out
    bad = results / "big" / "nsmc" / "seed-42.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["report", str(results)]) == 2
    assert "seed-42.json: unreadable result file" in capsys.readouterr().err
