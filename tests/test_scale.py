"""koembed.scale: distributed encode on a local Ray (2 CPUs), and one index built from vector shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from koembed.corpus import iter_records
from koembed.errors import IndexRefusedError

pytest.importorskip("ray", reason="needs the 'scale' extra: pip install -e '.[scale]'")

REPO = Path(__file__).resolve().parent.parent
WORDS = ["서울", "부산", "날씨", "영화", "음식", "여행", "경제", "축구", "음악", "학교", "바다", "기차"]


def sentence(i: int) -> str:
    return f"{WORDS[i % 12]} {WORDS[(i * 7) % 12]} 이야기 {i}번 " + WORDS[(i * 5) % 12] * (1 + i % 4)


@pytest.fixture(scope="module")
def ray_local():
    from koembed.scale.ray_session import ray_session

    with ray_session(num_cpus=2) as session:
        yield session


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three inputs: JSONL (with an empty line), Parquet (two row groups a shard), txt."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("corpus")
    with (d / "a.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(90):
            fh.write("\n" if i == 33 else json.dumps({"id": f"a{i}", "text": sentence(i), "metadata": {"n": i % 3}},
                                                     ensure_ascii=False) + "\n")
    table = pa.table({"id": [f"b{i}" for i in range(70)], "text": [sentence(100 + i) for i in range(70)],
                      "lang": ["ko"] * 70})
    pq.write_table(table, d / "b.parquet", row_group_size=20)
    (d / "c.txt").write_text("".join(sentence(200 + i) + "\n" for i in range(45)), encoding="utf-8")
    return d


def expected_records(folder: Path) -> list:
    out = []
    for name in ("a.jsonl", "b.parquet", "c.txt"):
        for r in iter_records(folder / name):
            out.append((f"{name}:{r.id}" if name.endswith(".txt") else r.id, r.text, r.metadata))
    return out


def read_set(directory: Path) -> tuple[list[str], np.ndarray, list[str], list[dict]]:
    from koembed.scale.vector_set import VectorSet, iter_shard

    vs = VectorSet.open(directory)
    ids, vecs, texts, meta = [], [], [], []
    for s in vs.manifest.shards:
        for b in iter_shard(vs.shard_path(s)):
            ids += b.ids
            vecs.append(b.vectors)
            texts += b.texts
            meta += [json.loads(m) for m in b.metadata]
    return ids, np.vstack(vecs), texts, meta


def assert_same_vectors(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= 0.9999, cos.min()


def test_distributed_encode_equals_one_process_and_reruns_skip(ray_local, corpus_dir, tiny_st_dir, tiny_encoder,
                                                                tmp_path):
    from koembed.scale import EncodeJobConfig, encode_distributed

    config = EncodeJobConfig(input=str(corpus_dir), output=str(tmp_path / "vec"), model=str(tiny_st_dir),
                             shard_rows=40, num_workers=2)
    result = encode_distributed(config)
    want = expected_records(corpus_dir)
    # a.jsonl: 90 lines -> 3 shards; b.parquet: row groups of 20 -> 2 groups (40 rows) a shard -> 2; c.txt: 2
    assert (result.shards, result.encoded_shards, result.workers) == (7, 7, 2)
    assert (result.count, result.empty, result.dim) == (len(want), 1, tiny_encoder.dim)
    ids, vecs, texts, meta = read_set(tmp_path / "vec")
    assert ids == [w[0] for w in want] and texts == [w[1] for w in want] and meta == [w[2] for w in want]
    assert_same_vectors(vecs, tiny_encoder.encode(texts))

    manifest = json.loads((tmp_path / "vec" / "manifest.json").read_text())
    assert manifest["model"]["fingerprint"] == tiny_encoder.fingerprint and manifest["complete"]
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "vec" / "shards").iterdir()}
    again = encode_distributed(config)
    assert (again.encoded_shards, again.resumed_shards, again.count) == (0, 7, len(want))
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "vec" / "shards").iterdir()} == files


def test_rerun_with_another_model_is_refused(corpus_dir, tiny_st_dir, tiny_bert_dir, tmp_path):
    from koembed.scale import EncodeJobConfig, encode_distributed
    from koembed.scale.vector_set import VectorManifest, write_manifest

    out = tmp_path / "vec"
    (out / "shards").mkdir(parents=True)
    from koembed.model_source import model_fingerprint, resolve_model

    fp = model_fingerprint(resolve_model(str(tiny_st_dir)))
    old = EncodeJobConfig(input=str(corpus_dir), output=str(out), model=str(tiny_st_dir))
    settings = {"fingerprint": fp, "backend": "torch", "normalize": True, "max_seq_length": None, "with_text": True,
                "fields": ["text", "id", "metadata"]}
    write_manifest(out, VectorManifest(model={"name": str(tiny_st_dir), "fingerprint": fp, "backend": "torch"},
                                       config={"settings": settings} | {"input": old.input}))
    with pytest.raises(IndexRefusedError, match="other settings .*fingerprint"):
        encode_distributed(EncodeJobConfig(input=str(corpus_dir), output=str(out), model=str(tiny_bert_dir)))


def _shard_files(out: Path) -> dict[str, tuple[int, int]]:
    d = out / "shards"
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in d.glob("part-*.parquet")} if d.is_dir() else {}


def _kill_first_encoder_actor(out: Path, before: set[str], killed: list[int], stop: threading.Event) -> None:
    """Once a shard not in ``before`` appears, SIGKILL this test's Ray actor that is encoding (a descendant)."""
    import psutil

    while not stop.is_set():
        if set(_shard_files(out)) - before:
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "ShardEncoder" in " ".join(proc.cmdline()):
                        proc.kill()
                        killed.append(proc.pid)
                        return
                except psutil.Error:
                    continue
        time.sleep(0.02)


def _wait_for_no_encoder_actors(timeout: float = 60) -> None:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if "ShardEncoder" in " ".join(proc.cmdline()):
                    alive.append(proc)
            except psutil.Error:
                continue
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError("the killed driver's encoding actor did not exit")


def test_resume_after_killed_driver_and_killed_worker(ray_local, tiny_st_dir, tiny_encoder, tmp_path):
    """A driver killed mid-run loses no finished shard; a rerun redoes none of them and survives a dead actor."""
    import ray

    from koembed.scale import EncodeJobConfig, encode_distributed

    lines = [sentence(i) for i in range(1000)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "vec"
    config = EncodeJobConfig(input=str(tmp_path / "in.txt"), output=str(out), model=str(tiny_st_dir), shard_rows=50,
                             num_workers=1, address=ray.get_runtime_context().gcs_address)
    script = ("import json, sys\nfrom koembed.scale import EncodeJobConfig, encode_distributed\n"
              "encode_distributed(EncodeJobConfig(**json.loads(sys.argv[1])))\n")
    from dataclasses import asdict

    driver = subprocess.Popen([sys.executable, "-c", script, json.dumps(asdict(config))], cwd=REPO,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _shard_files(out) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        driver.wait()
    _wait_for_no_encoder_actors()  # the dead driver's actor could otherwise still finish a shard
    before = _shard_files(out)
    assert 1 <= len(before) < 20, before

    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_first_encoder_actor, args=(out, set(before), killed, stop))
    watcher.start()
    try:
        result = encode_distributed(EncodeJobConfig(**(asdict(config) | {"address": None})))
    finally:
        stop.set()
        watcher.join()
    assert killed, "no encoding actor was found to kill"
    assert result.shards == 20 and result.resumed_shards == len(before) and result.count == 1000
    after = _shard_files(out)
    assert {k: after[k] for k in before} == before  # the driver's finished shards were not redone
    ids, vecs, texts, _ = read_set(out)
    assert ids == [str(i) for i in range(1, 1001)] and texts == lines
    assert_same_vectors(vecs, tiny_encoder.encode(lines))
