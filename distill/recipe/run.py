"""``python -m distill recipe nano``: the whole KoMiniLM pipeline at a scale two CPU cores can run.

corpus -> WordPiece tokenizer -> MLM teacher -> MiniLM-distilled student -> sentence training
(NLI/pair stage, then KorSTS) -> evaluation -> packaged default model -> benchmark suite.

It is a scale model of the real run (``klue/bert-base`` -> KoMiniLM-23M on 20 GB) that uses the
same code. Every stage writes ``<stage>/stage.json`` when it finishes, so a rerun skips finished
stages and the stages that checkpoint (MLM, distillation, sentence training) resume inside.
Evaluation splits (KorSTS dev/test, KorNLI/XNLI test, NSMC/QP test, PAWS-X, KLUE dev sets, KorQuAD
dev) never enter the tokenizer, MLM, distillation or sentence training: see :mod:`distill.recipe.corpus`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.errors import InputError
from koembed.paths import data_dir as default_data_dir

RECIPES = Path(__file__).resolve().parent / "recipes"


@dataclass
class RecipeConfig:
    """Every setting of a recipe run; ``distill/recipe/recipes/<name>.json`` holds the committed values."""

    name: str = "nano"
    output_dir: str = "runs/recipe-nano"
    data_dir: str | None = None
    vocab_size: int = 12000
    limit_alphabet: int = 1500  # characters kept as WordPiece's base alphabet (see distill.tokenizer)
    max_length: int = 128
    teacher: dict[str, Any] = field(default_factory=dict)  # BertConfig fields of the MLM teacher
    student: dict[str, Any] = field(default_factory=dict)  # BertConfig fields of the distilled student
    mlm: dict[str, Any] = field(default_factory=dict)  # distill.mlm.MLMConfig fields
    distill: dict[str, Any] = field(default_factory=dict)  # distill.minilm.DistillConfig fields
    sentence: dict[str, Any] = field(default_factory=dict)  # koembed.training.TrainConfig fields
    bench: dict[str, Any] = field(default_factory=dict)  # distill.bench.run.BenchConfig fields
    package_dir: str = "runs/kominilm-nano-sts"  # the nano model left the package: docs/results/kominilm-nano-sts
    threads: int = 0  # torch threads the stages run on; 0 = torch's default (all cores)
    quiet: bool = False

    @classmethod
    def load(cls, name_or_path: str) -> RecipeConfig:
        data = load_recipe_json(name_or_path)
        path = name_or_path
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**data)


def load_recipe_json(name_or_path: str) -> dict[str, Any]:
    """A recipe's JSON object: ``distill/recipe/recipes/NAME.json`` or a file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.json")))
        raise InputError(f"recipe {name_or_path!r}: no such recipe file ({path}); known recipes: {known}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a UTF-8 JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of recipe settings")
    return data


class Recipe:
    """Runs the stages in order; each is a method ``stage_<name>`` returning a JSON-able result."""

    STAGES = ("corpus", "tokenizer", "teacher", "student", "random_student",
              "sentence_student", "sentence_random", "sentence_teacher", "evaluate", "package", "bench")

    def __init__(self, config: RecipeConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = config
        self.out = Path(config.output_dir)
        self.data = default_data_dir(config.data_dir)
        self.log = log
        if not self.data.is_dir():
            raise InputError(f"recipe: data folder {self.data} not found (set --data-dir or KOEMBED_DATA_DIR)")

    def run(self, only: list[str] | None = None) -> dict[str, Any]:
        """Run the stages (``only`` those named, if given) not finished yet; return every stage's result."""
        if self.cfg.threads:
            import torch

            torch.set_num_threads(self.cfg.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "recipe_config.json", json.dumps(asdict(self.cfg), indent=2, ensure_ascii=False))
        results: dict[str, Any] = {}
        for stage in self.STAGES:
            if only and stage not in only:
                continue
            marker = self.out / stage / "stage.json"
            if marker.is_file():
                results[stage] = json.loads(marker.read_text(encoding="utf-8"))["result"]
                self.log(f"[recipe] {stage}: done earlier, skipped")
                continue
            self.log(f"[recipe] {stage}: start {time.strftime('%H:%M:%S')}")
            (self.out / stage).mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            result = getattr(self, f"stage_{stage}")()
            seconds = round(time.perf_counter() - start, 1)
            atomic_write_text(marker, json.dumps({"result": result, "seconds": seconds}, indent=2, ensure_ascii=False))
            results[stage] = result
            self.log(f"[recipe] {stage}: finished in {seconds:.0f} s: {json.dumps(result, ensure_ascii=False)[:300]}")
        return results

    # -- stages ---------------------------------------------------------------------------------

    def stage_corpus(self) -> dict[str, Any]:
        from distill.recipe.corpus import write_corpus

        return {"lines": write_corpus(self.data, self.corpus_path)}

    def stage_tokenizer(self) -> dict[str, Any]:
        from transformers import AutoTokenizer

        from distill.tokenizer import train_wordpiece

        # Not bit-reproducible: the tokenizers trainer breaks count ties in hash order, so two runs on this
        # corpus differ in a few entries and many ids (docs/recipe.md); the model ships with its own tokenizer.
        with self.corpus_path.open(encoding="utf-8") as fh:
            train_wordpiece((line.rstrip("\n") for line in fh), self.tokenizer_dir, vocab_size=self.cfg.vocab_size,
                            limit_alphabet=self.cfg.limit_alphabet,
                            model_max_length=self.cfg.max_length)
        return {"vocab_size": len(AutoTokenizer.from_pretrained(self.tokenizer_dir))}

    def stage_teacher(self) -> dict[str, Any]:
        from distill.mlm import MLMConfig, train_mlm
        from distill.probes import context_gain, probe_lines

        cfg = MLMConfig(corpus=[str(self.corpus_path)], output_dir=str(self.out / "teacher"),
                        config=str(self._arch_json("teacher", self.cfg.teacher)), tokenizer=str(self.tokenizer_dir),
                        max_length=self.cfg.max_length, resume=_has_checkpoint(self.out / "teacher"),
                        quiet=self.cfg.quiet, **self.cfg.mlm)
        folder = train_mlm(cfg)
        # Whether the teacher has left the unigram plateau, on 2,000 corpus lines (docs/recipe.md).
        gain = context_gain(folder, probe_lines(self.corpus_path))
        return {"path": str(folder), **_final_loss(self.out / "teacher"), "context_gain": gain}

    def stage_student(self) -> dict[str, Any]:
        from distill.minilm import DistillConfig, distill

        student = str(self._arch_json("student", self.cfg.student))
        cfg = DistillConfig(corpus=[str(self.corpus_path)], output_dir=str(self.out / "student"),
                            teacher=str(self.out / "teacher"), student=student,
                            max_length=self.cfg.max_length, resume=_has_checkpoint(self.out / "student"),
                            quiet=self.cfg.quiet, **self.cfg.distill)
        return {"path": str(distill(cfg)), **_final_loss(self.out / "student")}

    def stage_random_student(self) -> dict[str, Any]:
        """(b): the student architecture with random weights, the control for what distillation adds."""
        from transformers import AutoTokenizer

        from distill.student import build_student, student_config

        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        config = student_config(str(self._arch_json("student", self.cfg.student)), None,
                                {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id})
        model, _ = build_student(config, seed=self.cfg.sentence.get("seed", 42))
        folder = self.out / "random_student" / "model"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return {"path": str(folder)}

    def stage_sentence_student(self) -> dict[str, Any]:
        return self._sentence("student", self.out / "student")

    def stage_sentence_random(self) -> dict[str, Any]:
        return self._sentence("random", self.out / "random_student" / "model")

    def stage_sentence_teacher(self) -> dict[str, Any]:
        return self._sentence("teacher", self.out / "teacher")

    def stage_evaluate(self) -> dict[str, Any]:
        from koembed.baselines import tfidf_retrieval, tfidf_sts
        from koembed.evaluate import load_retrieval_data, load_sts_pairs, run_task
        from koembed.korean_data import read_korsts

        train = read_korsts(self.data / "korsts" / "sts-train.tsv")
        fit = [s for p in train for s in (p["sentence1"], p["sentence2"])]
        test = load_sts_pairs("korsts-test", self.data)
        res: dict[str, Any] = {"a_tfidf": {"korsts-test": tfidf_sts(test, fit)["spearman"]}}
        res["a_tfidf"]["korquad-retrieval"] = _retrieval_view(tfidf_retrieval(load_retrieval_data("korquad-retrieval",
                                                                                                  self.data)))
        for key, name in (("b_random", "random"), ("c_teacher", "teacher"), ("d_distilled", "student")):
            model = str(self.out / f"sentence_{name}" / "model")
            res[key] = {"korsts-test": run_task(model, "korsts-test", self.data)["spearman"],
                        "korsts-dev": run_task(model, "korsts-dev", self.data)["spearman"]}
        res["d_distilled"]["korquad-retrieval"] = _retrieval_view(
            run_task(str(self.out / "sentence_student" / "model"), "korquad-retrieval", self.data))
        res["retention_d_over_c"] = round(res["d_distilled"]["korsts-test"] / res["c_teacher"]["korsts-test"], 4)
        return res

    def stage_bench(self) -> dict[str, Any]:
        from distill.bench.report import render_report
        from distill.bench.run import BenchConfig, run_bench

        models = [f"b-random={self.out / 'random_student' / 'model'}", f"c-teacher={self.out / 'teacher'}",
                  f"d-distilled={self.out / 'student'}"]
        out = run_bench(BenchConfig(models=models, output_dir=str(self.out / "bench" / "results"),
                                    data_dir=str(self.data), use_hub=False, quiet=self.cfg.quiet, **self.cfg.bench))
        table = render_report(out)
        atomic_write_text(self.out / "bench" / "table.md", table)
        return {"results": str(out), "table": str(self.out / "bench" / "table.md")}

    def stage_package(self) -> dict[str, Any]:
        from distill.recipe.package import package_model

        return package_model(self.out / "sentence_student" / "model", Path(self.cfg.package_dir), self.out, self.data)

    # -- helpers --------------------------------------------------------------------------------

    @property
    def corpus_path(self) -> Path:
        return self.out / "corpus" / "corpus.txt"

    @property
    def tokenizer_dir(self) -> Path:
        return self.out / "tokenizer" / "tokenizer"

    def _arch_json(self, name: str, fields: dict[str, Any]) -> Path:
        """The architecture as a CONFIG.json of only the fields that differ from BERT defaults."""
        path = self.out / f"{name}_architecture.json"
        atomic_write_text(path, json.dumps(fields, indent=2) + "\n")
        return path

    def _sentence(self, name: str, base: Path) -> dict[str, Any]:
        from koembed.training import TrainConfig, train

        out = self.out / f"sentence_{name}" / "model"
        cfg = TrainConfig.from_dict({**self.cfg.sentence, "base_model": str(base), "data_dir": str(self.data),
                                     "output_dir": str(out), "resume": True,
                                     "quiet": self.cfg.quiet})
        return {"path": str(train(cfg).output_dir)}


def _has_checkpoint(folder: Path) -> bool:
    """Resume only what was started: a fresh stage has no checkpoint to resume from."""
    return folder.is_dir() and any(folder.glob("checkpoint-*"))


def _final_loss(folder: Path) -> dict[str, Any]:
    from distill.loop import read_log

    logs = [r for r in read_log(folder / "log.jsonl") if "loss" in r] if (folder / "log.jsonl").is_file() else []
    if not logs:
        return {}
    first, last = logs[0], logs[-1]
    return {"first_loss": round(first["loss"], 4), "final_loss": round(last["loss"], 4), "steps": last.get("step")}


def _retrieval_view(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("mrr@10", "recall@10", "ndcg@10") if k in metrics}
