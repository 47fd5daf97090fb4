"""Sentence-embedding training: NLI with in-batch negatives, then STS regression, on SentenceTransformerTrainer.

``train(TrainConfig(...)) -> TrainResult`` runs the stages in order, each a ``SentenceTransformerTrainer``
run (so checkpoints, resume, dev evaluation during training and multi-GPU via ``torchrun`` /
``accelerate launch`` come from it), and leaves a plain sentence-transformers folder with its config
(``koembed_train_config.json``), measured scores (``eval_results.json``) and a model card.

Work in progress lives in ``OUT/checkpoints/<stage>/``: ``checkpoint-N`` folders written by the
trainer, and ``final/`` once a stage completes. ``resume=True`` skips finished stages and continues
an unfinished one from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.errors import InputError
from koembed.evaluate import load_sts_pairs
from koembed.korean_data import RowReport
from koembed.paths import data_dir as resolve_data_dir
from koembed.system import is_main_process
from koembed.training.losses import CACHED_MNRL, NLI_LOSSES, STS_LOSSES, loss_class_name  # noqa: F401 - the CLI's names

CONFIG_NAME = "koembed_train_config.json"
RESULTS_NAME = "eval_results.json"
STAGES = ("nli", "sts")
# Settings that may change between an interrupted run and its resumption.
_RESUME_FREE = {"resume", "quiet", "keep_checkpoints", "device", "report_test", "output_dir"}
# The local stand-ins for KorNLI train (absent here): never a split that is reported (KorSTS dev/test, xnli test).
LOCAL_NLI_FILES = ["kornli/xnli.dev.ko.tsv", "klue/nli/klue-nli-v1.1_dev.json", "parakqc/paraKQC_v1.txt",
                   "question_pair/train.txt"]


@dataclass
class StageConfig:
    """Hyperparameters of one stage; ``max_steps > 0`` overrides ``epochs``."""

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    max_steps: int = -1
    max_train_samples: int | None = None  # per data source, sampled with the seed; None = all


@dataclass
class TrainConfig:
    """Every setting of a training run; saved as JSON beside the model."""

    base_model: str = "BM-K/KoMiniLM"
    output_dir: str = "models/kominilm-sts"
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    nli: StageConfig = field(default_factory=lambda: StageConfig(epochs=1, batch_size=64, lr=5e-5))
    sts: StageConfig = field(default_factory=lambda: StageConfig(epochs=4, batch_size=16, lr=2e-5))
    max_seq_length: int = 128
    seed: int = 42
    eval_steps: int = 200  # KorSTS dev evaluation every N steps; 0 = only at the end of each stage
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 50
    data_dir: str | None = None  # default: koembed.paths.data_dir(); one given must exist
    # Data specs (koembed.training.data): DATASET:SPLIT, FORMAT:PATH, PATH (relative to data_dir) or hub:NAME.
    nli_files: list[str] = field(default_factory=lambda: list(LOCAL_NLI_FILES))
    sts_files: list[str] = field(default_factory=lambda: ["korsts/sts-train.tsv"])
    dev_file: str = "korsts/sts-dev.tsv"
    use_hub: bool = True  # a catalogued split with no local file is loaded from the Hugging Face Hub
    max_dev_samples: int | None = None
    nli_loss: str = "mnrl"
    cached_mnrl: bool = False  # CachedMultipleNegativesRankingLoss (GradCache): large batches in small memory
    mini_batch_size: int = 32  # GradCache mini-batch
    sts_loss: str = "cosent"
    # The model's prompt (e.g. "query" for E5-style models) before every training and dev text, as the model is
    # used at inference (koembed embeds STS pairs with the query prompt); None = no prompt.
    prompt_name: str | None = None
    normalize: bool = True  # end the model with a Normalize module, so every loader gives unit vectors
    report_test: bool = True  # measure KorSTS test for the model card (never used for any choice)
    resume: bool = False
    keep_checkpoints: bool = False
    quiet: bool = False
    device: str | None = None

    def validate(self) -> None:
        bad = [s for s in self.stages if s not in STAGES]
        if bad or not self.stages:
            raise InputError(f"stages {','.join(self.stages)!r}: choose from {', '.join(STAGES)} (e.g. nli,sts)")
        if self.nli_loss not in NLI_LOSSES:
            raise InputError(f"nli_loss {self.nli_loss!r}: choose one of {', '.join(NLI_LOSSES)}")
        if self.sts_loss not in STS_LOSSES:
            raise InputError(f"sts_loss {self.sts_loss!r}: choose one of {', '.join(STS_LOSSES)}")
        for name in self.stages:
            st = getattr(self, name)
            if st.batch_size < 1 or st.lr <= 0 or (st.max_steps <= 0 and st.epochs <= 0):
                raise InputError(f"stage {name}: batch_size, lr and epochs (or max_steps) must be positive")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n"

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides`` applied; None means "not given" and keeps the current value.

        Keys are TrainConfig fields, StageConfig fields (``epochs``, ``lr``, ...: applied to every stage)
        or ``"STAGE.FIELD"`` (``**{"sts.lr": 1e-4}``: one stage). ``stages`` may be a comma-separated string.
        """
        cfg = TrainConfig.from_dict(asdict(self))
        top = {f.name for f in dataclasses.fields(TrainConfig)} - set(STAGES)
        per_stage = {f.name for f in dataclasses.fields(StageConfig)}
        for key, value in overrides.items():
            if value is None:
                continue
            stage, dot, name = key.partition(".")
            if dot and stage in STAGES and name in per_stage:
                setattr(getattr(cfg, stage), name, value)
            elif key in per_stage:
                for st in STAGES:
                    setattr(getattr(cfg, st), key, value)
            elif key == "stages" and isinstance(value, str):
                cfg.stages = [s.strip() for s in value.split(",") if s.strip()]
            elif key in top:
                setattr(cfg, key, list(value) if isinstance(value, tuple) else value)
            else:
                raise InputError(f"training config: unknown setting {key!r}")
        return cfg

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"training config: unknown field(s) {', '.join(unknown)}")
        data = dict(data)
        for stage in STAGES:
            if isinstance(data.get(stage), dict):
                data[stage] = StageConfig(**data[stage])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise InputError(f"{path}: not a readable training config ({exc})") from None


@dataclass
class TrainResult:
    """What :func:`train` made: the model folder and the measurements saved beside it in ``eval_results.json``.

    ``stages`` and ``scores`` are empty on the processes of a multi-process run that do not write (rank > 0).
    """

    output_dir: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The content of ``eval_results.json``."""
        return {"stages": self.stages, "scores": self.scores}


def train(config: TrainConfig, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Run the configured stages; the output folder is a sentence-transformers model."""
    from transformers import set_seed

    config.validate()
    out = Path(config.output_dir)
    if config.resume and (out / RESULTS_NAME).is_file():  # finished earlier: eval_results.json is written last
        done = json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))
        return TrainResult(out, done.get("stages", {}), done.get("scores", {}))
    main = is_main_process()
    if main:
        _check_output(out, config)
    # All data is read before the output folder is written to: a run that fails on missing data leaves
    # nothing behind, and its folder can be rerun as it was.
    data_dir = resolve_data_dir(config.data_dir)
    todo = [s for s in config.stages if not (config.resume and (_final(out, s) / "modules.json").is_file())]
    reports = {stage: RowReport() for stage in todo}
    stage_data = {stage: _stage_data(stage, config, data_dir, reports[stage]) for stage in todo}
    dev_rows = _dev_rows(config, data_dir)
    for task in _score_tasks(config):  # the scores measured at the end: their data must be there too
        load_sts_pairs(task, data_dir, max_samples=2, use_hub=config.use_hub)
    if main:
        _prepare_output(out, config)
    if config.quiet:
        from transformers.utils import logging as hf_logging

        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        hf_logging.disable_progress_bar()  # e.g. "Writing model shards" on every save
    set_seed(config.seed)
    model = _base_model(config)
    dev = _dev_evaluator(dev_rows)
    summary: dict[str, Any] = {"stages": {}}
    for stage in config.stages:
        final = _final(out, stage)
        if stage not in stage_data:  # finished in the run being resumed
            model = _load(final, config)
            summary["stages"][stage] = json.loads((final / "stage.json").read_text(encoding="utf-8"))
            continue
        summary["stages"][stage] = _run_stage(stage, model, config, stage_data[stage], reports[stage], dev, out,
                                              callbacks)
        if main:
            model.save(str(final), create_model_card=False)
            atomic_write_text(final / "stage.json", json.dumps(summary["stages"][stage], indent=2))
    if not main:  # under torchrun / accelerate every process trains; one writes
        return TrainResult(out)
    # The folder counts as finished once eval_results.json exists (written last, atomically); an
    # interruption before that is repaired by --resume, which finds every stage final and re-saves.
    model.save(str(out), create_model_card=False)
    summary |= _final_scores(out, config, data_dir)
    atomic_write_text(out / RESULTS_NAME, json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    from koembed.training.model_card import write_model_card

    write_model_card(out, config, summary)
    if not config.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return TrainResult(out, summary["stages"], summary["scores"])


def _final(out: Path, stage: str) -> Path:
    return out / "checkpoints" / stage / "final"


def _started(out: Path) -> bool:
    """Whether a run in ``out`` trained anything: a folder holding only its saved config (a run that stopped
    before its first checkpoint, e.g. on missing data) is not started and may be rerun with any settings."""
    return out.is_dir() and any(p.name != CONFIG_NAME for p in out.iterdir())


def _check_output(out: Path, config: TrainConfig) -> None:
    """Refuse a folder that another run has started, unless resuming it with the same settings."""
    if not _started(out):
        return
    saved = out / CONFIG_NAME
    if not config.resume:
        raise InputError(f"{out}: output folder is not empty; pass --resume to continue it or choose another -o")
    if saved.is_file():
        old = asdict(TrainConfig.load(saved))
        diff = [k for k, v in asdict(config).items() if k not in _RESUME_FREE and old.get(k) != v]
        if diff:
            raise InputError(f"{out}: cannot resume, these settings differ from the interrupted run: "
                             f"{', '.join(diff)}; use the same settings or a new output folder")


def _prepare_output(out: Path, config: TrainConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_NAME, config.to_json())


def _load(path: Path, config: TrainConfig):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=config.device or _default_device())
    model.max_seq_length = config.max_seq_length
    return model


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _base_model(config: TrainConfig):
    """The base as a SentenceTransformer: as saved, or Transformer -> mean Pooling for a bare BERT; + Normalize."""
    from sentence_transformers.sentence_transformer.modules import Normalize

    from koembed.backends.torch_backend import build_sentence_transformer
    from koembed.model_source import resolve_model

    model = build_sentence_transformer(resolve_model(config.base_model), config.device or _default_device())
    if config.normalize and not any(isinstance(m, Normalize) for m in model):
        model.append(Normalize())
    model.max_seq_length = config.max_seq_length
    return model


def _dev_rows(config: TrainConfig, data_dir: Path) -> list[dict]:
    """The STS pairs scored during training (``dev_file``: any STS data spec)."""
    from koembed.training.data import read_spec

    return read_spec(config.dev_file, data_dir, RowReport(), ("sts",), config.use_hub)[1][: config.max_dev_samples]


def _dev_evaluator(rows: list[dict]):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    return EmbeddingSimilarityEvaluator([r["sentence1"] for r in rows], [r["sentence2"] for r in rows],
                                        [r["score"] / 5.0 for r in rows], main_similarity="cosine",
                                        name="korsts-dev", write_csv=False)


def _loss(stage: str, model, config: TrainConfig):
    from sentence_transformers.sentence_transformer import losses

    name = loss_class_name(stage, config)
    options = {"mini_batch_size": config.mini_batch_size} if name == CACHED_MNRL else {}
    return getattr(losses, name)(model, **options)


def _stage_data(stage: str, config: TrainConfig, data_dir: Path, report: RowReport):
    from koembed.training.data import nli_stage_data, sts_stage_data, to_datasets

    st: StageConfig = getattr(config, stage)
    build = nli_stage_data if stage == "nli" else sts_stage_data
    files = config.nli_files if stage == "nli" else config.sts_files
    return to_datasets(build(files, data_dir, report, st.max_train_samples, config.seed, config.use_hub))


def _run_stage(stage: str, model, config: TrainConfig, dataset, report: RowReport, dev, out: Path,
               callbacks) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    st: StageConfig = getattr(config, stage)
    prompt = _prompt(model, config)
    if report.total_bad and not config.quiet:
        logging.getLogger("koembed").warning("malformed rows skipped:\n%s", report.summary())
    work = out / "checkpoints" / stage
    work.mkdir(parents=True, exist_ok=True)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=st.epochs,
        max_steps=st.max_steps,
        per_device_train_batch_size=st.batch_size,
        per_device_eval_batch_size=max(st.batch_size, 32),
        learning_rate=st.lr,
        warmup_steps=st.warmup_ratio,
        seed=config.seed,
        data_seed=config.seed,
        # In-batch negatives must not meet their own positive as a "negative".
        batch_sampler="no_duplicates" if stage == "nli" else "batch_sampler",
        eval_strategy="steps" if config.eval_steps > 0 else "no",
        eval_steps=config.eval_steps or None,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        report_to="none",
        disable_tqdm=config.quiet,
        use_cpu=(config.device == "cpu"),
        prompts=prompt,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                         loss=_loss(stage, model, config), evaluator=dev, callbacks=list(callbacks))
    if config.quiet:
        trainer.remove_callback(PrinterCallback)
    last = get_last_checkpoint(str(work)) if config.resume and work.is_dir() else None
    # The dev evaluator encodes with the model's default prompt: the one trained with, for the time of the stage.
    before = model.default_prompt_name
    model.default_prompt_name = config.prompt_name
    try:
        # The trainer prints its logs (loss, dev scores) to stdout; they are progress, so stderr.
        with contextlib.redirect_stdout(sys.stderr):
            result = trainer.train(resume_from_checkpoint=last)
        dev_scores = dev(model)
    finally:
        model.default_prompt_name = before
    sizes = {k: len(v) for k, v in dataset.items()}
    return {"steps": result.global_step, "train_loss": round(float(result.training_loss), 5),
            "resumed_from": Path(last).name if last else None, "examples": sizes, "prompt": prompt,
            "korsts_dev_spearman": round(100 * float(dev_scores[dev.primary_metric]), 2),
            "malformed_rows": report.total_bad}


def _prompt(model, config: TrainConfig) -> str | None:
    if config.prompt_name is None:
        return None
    prompts = getattr(model, "prompts", None) or {}
    if not prompts.get(config.prompt_name):  # sentence-transformers lists "query" and "document" as "" by default
        known = ", ".join(sorted(k for k, v in prompts.items() if v)) or "none"
        raise InputError(f"prompt_name {config.prompt_name!r}: the model has no such prompt (its prompts: {known})")
    return prompts[config.prompt_name]


def _score_tasks(config: TrainConfig) -> list[str]:
    return ["korsts-dev"] + (["korsts-test"] if config.report_test else [])


def _final_scores(out: Path, config: TrainConfig, data_dir: Path) -> dict[str, Any]:
    """KorSTS dev (and test) Spearman of the saved folder, measured as users load it (KoMiniLMEncoder)."""
    from koembed.encoder import KoMiniLMEncoder
    from koembed.evaluate import run_task

    # torch, already loaded by training: the default (onnx) would export the new model just for this score.
    encoder = KoMiniLMEncoder(str(out), device=config.device, backend="torch")
    scores = {}
    for task in _score_tasks(config):
        r = run_task(encoder, task, data_dir=data_dir, use_hub=config.use_hub)
        scores[task] = {"spearman": round(r["spearman"], 2), "pearson": round(r["pearson"], 2), "n": r["n"]}
    return {"scores": scores}
