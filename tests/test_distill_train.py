"""The distillation and masked-LM loops end to end on tiny models: learning, outputs, kill + resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import distill_fixtures
import pytest
import torch
from distill_fixtures import write_student_config

from distill.cli import main as distill_main
from distill.loop import read_log
from distill.minilm import DistillConfig, distill

torch.set_num_threads(1)
# Shared fixtures (a tiny teacher with sharp attention, a Korean corpus file).
distill_corpus_lines = distill_fixtures.distill_corpus_lines
distill_corpus = distill_fixtures.distill_corpus
teacher_dir = distill_fixtures.teacher_dir
REPO = Path(__file__).resolve().parent.parent


def _cfg(teacher_dir, corpus, out, student, **kw) -> DistillConfig:
    base = dict(teacher=str(teacher_dir), student=str(student), corpus=[str(corpus)], output_dir=str(out),
                max_steps=40, batch_size=8, max_length=64, log_every=1, checkpoint_every=0, lr=1e-2,
                warmup_steps=2, quiet=True)
    return DistillConfig(**{**base, **kw})


def test_distillation_lowers_the_loss_on_korean_text(data_dir, teacher_dir, distill_corpus, tmp_path, monkeypatch):
    import distill.minilm as train_mod

    seen = {}
    real_load = train_mod.load_teacher

    def spy(name):
        source, model, tok = real_load(name)
        seen["model"] = model
        seen["before"] = {k: v.clone() for k, v in model.state_dict().items()}
        return source, model, tok

    monkeypatch.setattr(train_mod, "load_teacher", spy)
    student = write_student_config(tmp_path / "student.json", hidden_size=64, intermediate_size=128)
    out = distill(_cfg(teacher_dir, distill_corpus, tmp_path / "out", student))

    losses = [r["loss"] for r in read_log(out / "log.jsonl")]
    assert len(losses) == 40
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    # The teacher is frozen: not one weight moved, and nothing asked for its gradients.
    after = seen["model"].state_dict()
    assert all(torch.equal(seen["before"][k], after[k]) for k in after)
    assert not any(p.requires_grad for p in seen["model"].parameters())

    # Output: a BertModel folder with the teacher's tokenizer, plus config, final losses and the plot.
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(out)
    assert model.config.architectures == ["BertModel"] and model.config.hidden_size == 64
    assert len(AutoTokenizer.from_pretrained(out)) == len(AutoTokenizer.from_pretrained(teacher_dir))
    assert json.loads((out / "distill_config.json").read_text())["max_steps"] == 40
    assert json.loads((out / "final_losses.json").read_text())["loss"] == losses[-1]
    assert (out / "loss.png").stat().st_size > 1000
    from koembed import KoMiniLMEncoder

    vecs = KoMiniLMEncoder(str(out)).encode(["오늘 날씨가 좋네요", "영화가 재미없다"])
    assert vecs.shape == (2, 64)


def _run_cli(args: list[str], env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "distill", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_loss_sequence(teacher_dir, distill_corpus, tmp_path):
    student = write_student_config(tmp_path / "student.json")
    common = dict(max_steps=60, batch_size=4, max_length=32, checkpoint_every=5, lr=3e-3)
    ref = distill(_cfg(teacher_dir, distill_corpus, tmp_path / "ref", student, **common))
    expected = [(r["step"], r["loss"]) for r in read_log(ref / "log.jsonl")]

    out = tmp_path / "killed"
    args = ["run", "--teacher", str(teacher_dir), "--student", str(student), "--corpus", str(distill_corpus),
            "--max-steps", "60", "--output-dir", str(out), "--batch-size", "4", "--max-length", "32",
            "--checkpoint-every", "5", "--lr", "3e-3", "--warmup-steps", "2", "--log-every", "1", "--quiet"]
    proc = _run_cli(args)
    deadline = time.time() + 120
    while not (out / "checkpoint-00000010").is_dir():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()  # it really died before the end
    done = max(r["step"] for r in read_log(out / "log.jsonl"))
    assert done < 60

    proc = _run_cli([*args, "--resume"])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    got = [(r["step"], r["loss"]) for r in read_log(out / "log.jsonl")]
    assert [s for s, _ in got] == list(range(1, 61))
    for (s, a), (_, b) in zip(got, expected, strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), f"step {s}"


def _bad(capsys, args: list[str]) -> str:
    code = distill_main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def _run_args(teacher, corpus, out, student, *extra) -> list[str]:
    return ["run", "--teacher", str(teacher), "--student", str(student), "--corpus", str(corpus), "--max-steps", "2",
            "--output-dir", str(out), "--quiet", *extra]


def test_bad_inputs_fail_before_training(teacher_dir, distill_corpus, tmp_path, capsys):
    student = write_student_config(tmp_path / "student.json")
    out = tmp_path / "out"

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert "no non-empty document" in _bad(capsys, _run_args(teacher_dir, empty, out, student))
    # Several paths may follow one --corpus; each is checked.
    err = _bad(capsys, _run_args(teacher_dir, distill_corpus, out, student, str(empty)))
    assert "empty.txt: the corpus file has no non-empty document" in err

    latin = tmp_path / "cp949.txt"
    latin.write_bytes("첫 줄\n둘째 줄\n".encode() + "셋째 줄".encode("cp949") + b"\n")
    err = _bad(capsys, _run_args(teacher_dir, latin, out, student))
    assert "cp949.txt: line 3: not valid UTF-8" in err

    vocab = write_student_config(tmp_path / "vocab.json", vocab_size=32000)
    assert "vocabulary mismatch" in _bad(capsys, _run_args(teacher_dir, distill_corpus, out, vocab))
    assert "vocabulary mismatch" in _bad(capsys, _run_args(teacher_dir, distill_corpus, out, "kominilm-23m"))

    err = _bad(capsys, _run_args(teacher_dir, distill_corpus, out, student, "--layer-map", "0:1,1:4"))
    assert "teacher layer 4 is out of range" in err

    heads = write_student_config(tmp_path / "heads.json", num_attention_heads=2)
    assert "mismatched head counts" in _bad(capsys, _run_args(teacher_dir, distill_corpus, out, heads))

    err = _bad(capsys, _run_args(teacher_dir, distill_corpus, out, student, "--resume"))
    assert "no checkpoint found" in err

    assert "no such corpus file" in _bad(capsys, _run_args(teacher_dir, tmp_path / "nope.txt", out, student))
    assert not (out / "log.jsonl").exists()


def test_v2_relations_accept_a_different_head_count(teacher_dir, distill_corpus, tmp_path):
    student = write_student_config(tmp_path / "s.json", num_attention_heads=2)
    out = distill(_cfg(teacher_dir, distill_corpus, tmp_path / "out", student, max_steps=3, relation_heads=8,
                       layer_map="last", init_from_teacher=True))
    row = read_log(out / "log.jsonl")[-1]
    assert {"qq", "kk", "vv", "pair_s1-t3"} <= set(row)


@pytest.mark.parametrize("pre_layernorm", [False, True], ids=["bert", "pre-ln"])
def test_mlm_pretrains_a_teacher(data_dir, teacher_dir, distill_corpus, tmp_path, capsys, pre_layernorm):
    from transformers import AutoModel, AutoTokenizer

    from distill.mlm import MLMConfig, train_mlm
    from distill.probes import context_gain

    cfg = MLMConfig(config=str(write_student_config(tmp_path / "t.json", hidden_size=64, intermediate_size=128)),
                    tokenizer=str(teacher_dir), corpus=[str(distill_corpus)], output_dir=str(tmp_path / "mlm"),
                    max_steps=60, batch_size=16, max_length=64, lr=3e-3, warmup_steps=5, log_every=1,
                    checkpoint_every=0, quiet=True, pre_layernorm=pre_layernorm)
    out = train_mlm(cfg)
    losses = [r["mlm"] for r in read_log(out / "log.jsonl")]
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:3]) / 3, losses
    assert AutoModel.from_pretrained(out).config.model_type == ("roberta-prelayernorm" if pre_layernorm else "bert")
    lines = distill_corpus.read_text(encoding="utf-8").splitlines()[:200]
    gain = context_gain(out, lines)
    n_words = sum(len(t) for t in AutoTokenizer.from_pretrained(out)(lines, truncation=True, max_length=64,
                                                                      add_special_tokens=False).input_ids)
    assert 0.10 * n_words < gain["masked_tokens"] < 0.20 * n_words, (gain, n_words)
    assert 0 < gain["ctx_loss"] < 12 and 0 < gain["noctx_loss"] < 12
    assert gain["gain"] == pytest.approx(gain["noctx_loss"] - gain["ctx_loss"], abs=1e-3)
    # The pretrained model serves as a teacher.
    code = distill_main(_run_args(out, distill_corpus, tmp_path / "student", tmp_path / "t.json", "--batch-size", "2",
                                  "--max-length", "32"))
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()

    assert distill_main(["presets", "--json"]) == 0
    presets = json.loads(capsys.readouterr().out)
    assert presets["kominilm-23m"]["hidden_size"] == 384 and presets["kominilm-68m"]["intermediate_size"] == 3072


def _take(stream, n):
    it = iter(stream)
    return [next(it) for _ in range(n)]


def test_packed_stream_shards_and_resumes_exactly(teacher_dir, distill_corpus):
    from transformers import AutoTokenizer

    from distill.data import PackedStream

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    one = _take(PackedStream([str(distill_corpus)], tok, max_length=32, batch_size=4, shard="stream"), 6)
    assert all(ids.shape == (4, 32) and bool(mask.all()) for ids, mask, _ in one)
    assert all(int(ids[0, 0]) == tok.cls_token_id and int(ids[0, -1]) == tok.sep_token_id for ids, _, _ in one)
    # stream sharding: the two processes' rows together are the one-process batch.
    r0 = _take(PackedStream([str(distill_corpus)], tok, 32, 2, rank=0, world_size=2, shard="stream"), 6)
    r1 = _take(PackedStream([str(distill_corpus)], tok, 32, 2, rank=1, world_size=2, shard="stream"), 6)
    for (a, _, _), (b, _, _), (c, _, _) in zip(r0, r1, one, strict=True):
        assert torch.equal(torch.cat([a, b]), c)
    # documents sharding: each process packs its own blocks of documents, so their segments differ.
    d0 = _take(PackedStream([str(distill_corpus)], tok, 32, 2, rank=0, world_size=2), 3)
    d1 = _take(PackedStream([str(distill_corpus)], tok, 32, 2, rank=1, world_size=2), 3)
    assert torch.equal(d0[0][0], one[0][0][:2]) and not torch.equal(d1[0][0], one[0][0][2:])
    # Restarting from the state carried by batch 3 gives batches 4.. exactly.
    again = _take(PackedStream([str(distill_corpus)], tok, 32, 4, shard="stream", state=one[2][2]), 3)
    for (a, _, _), (b, _, _) in zip(again, one[3:], strict=True):
        assert torch.equal(a, b)
    tail = _take(PackedStream([str(distill_corpus)], tok, 32, 2, rank=1, world_size=2, state=d1[0][2]), 2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tail, d1[1:], strict=True))


def test_data_workers_split_the_stream_and_resume_exactly(teacher_dir, distill_corpus):
    from transformers import AutoTokenizer

    from distill.data import open_batches

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    kw = dict(sources=[str(distill_corpus)], tokenizer=tok, max_length=32, batch_size=2, workers=2)
    it, _ = open_batches(**kw)
    unbroken = [next(it)[0] for _ in range(7)]
    # Worker k packs sub-stream k (its own blocks of documents); the loader alternates between them.
    it0, _ = open_batches(**{**kw, "workers": 0}, rank=0, world_size=2)
    assert torch.equal(unbroken[0], next(it0)[0])
    it, position = open_batches(**kw)
    for _ in range(3):  # stop after an odd count: the next batch is due from the second worker
        next(it)
    pos = position()
    assert pos["next"] == 1
    again, _ = open_batches(**kw, position=pos)
    for want in unbroken[3:]:
        assert torch.equal(next(again)[0], want)


def test_documents_sharding_gives_whole_files_when_there_are_enough(teacher_dir, distill_corpus, tmp_path):
    from transformers import AutoTokenizer

    from distill.data import PackedStream

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    lines = distill_corpus.read_text(encoding="utf-8").splitlines()
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    b.write_text("\n".join(lines[len(lines) // 2:]) + "\n", encoding="utf-8")
    r1 = _take(PackedStream([str(a), str(b)], tok, 32, 2, rank=1, world_size=2), 2)
    alone = _take(PackedStream([str(b)], tok, 32, 2), 2)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(r1, alone, strict=True))


def test_the_worker_dataset_pickles_for_spawned_workers(teacher_dir, distill_corpus):
    import pickle

    from transformers import AutoTokenizer

    from distill.data import StreamState, SubStreamsDataset

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    args = dict(sources=[str(distill_corpus)], tokenizer=tok, max_length=32, batch_size=2, rank=0, world_size=1,
                text_field="text", shard="documents")
    ds = pickle.loads(pickle.dumps(SubStreamsDataset(args, [StreamState(), StreamState()], 1)))
    assert isinstance(ds, torch.utils.data.IterableDataset) and ds.offset == 1


def test_auto_precision_uses_bf16_only_on_cpus_with_amx(tmp_path, monkeypatch):
    from distill import loop as train

    amx, avx2 = tmp_path / "amx", tmp_path / "avx2"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 amx_bf16 amx_tile\n")
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")
    assert train.cpu_has_fast_bf16(str(amx)) and not train.cpu_has_fast_bf16(str(avx2))
    assert not train.cpu_has_fast_bf16(str(tmp_path / "missing"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("KOEMBED_CPU_BF16", raising=False)
    monkeypatch.setattr(train, "cpu_has_fast_bf16", lambda: False)
    assert train.resolve_mixed_precision("auto") == "no"
    monkeypatch.setattr(train, "cpu_has_fast_bf16", lambda: True)
    assert train.resolve_mixed_precision("auto") == "bf16"
    assert train.resolve_mixed_precision("no") == "no"
    monkeypatch.setenv("KOEMBED_CPU_BF16", "0")
    assert train.resolve_mixed_precision("auto") == "no"


def test_cli_defaults_are_the_config_defaults():
    # Each option named like a config field defaults to that field's value, so the two cannot drift apart.
    import dataclasses
    import inspect

    from distill.bench.commands import bench
    from distill.bench.run import BenchConfig
    from distill.commands_distill import mlm_cmd, run_cmd
    from distill.mlm import MLMConfig

    checked = 0
    for command, config in ((run_cmd, DistillConfig()), (mlm_cmd, MLMConfig()), (bench, BenchConfig(models=[]))):
        fields = {f.name for f in dataclasses.fields(config)}
        for name, param in inspect.signature(command).parameters.items():
            default = getattr(param.default, "default", None)
            if name in fields and default not in (None, ...):
                assert default == getattr(config, name), (command.__name__, name)
                checked += 1
    assert checked >= 35
