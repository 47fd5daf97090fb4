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
                                                                tmp_path, capfd):
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

    # End to end: an on-disk IVF index from these shards, searched by text with the model in its manifest;
    # stdout holds only the JSON lines (FAISS prints while it merges; that goes to stderr).
    from koembed.cli import main

    capfd.readouterr()
    assert main(["index", "--from-vectors", str(tmp_path / "vec"), "-o", str(tmp_path / "idx"), "--index-type",
                 "IVF4,Flat", "--num-workers", "1", "-q"]) == 0
    assert capfd.readouterr().out == ""
    assert main(["search", str(tmp_path / "idx"), sentence(7), "-k", "3", "--json", "--mode", "dense"]) == 0
    hits = json.loads(capfd.readouterr().out)["hits"]
    assert hits[0]["id"] == "a7" and hits[0]["text"] == sentence(7) and hits[0]["metadata"] == {"n": 1}


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


def test_a_shard_task_run_twice_keeps_the_first_file_and_record(corpus_dir, tiny_encoder, tiny_st_dir, tmp_path):
    """Ray re-runs a task whose output was lost with its actor after the shard was written: the rerun must leave
    the file alone and report the same record, or the manifest and the bytes on disk disagree."""
    from koembed.scale.encode import EncodeJobConfig, _settings, encode_shard
    from koembed.scale.plan import list_inputs, plan_shards
    from koembed.scale.vector_set import sha256_file

    config = EncodeJobConfig(input=str(corpus_dir), output=str(tmp_path), model=str(tiny_st_dir), shard_rows=40)
    config.backend = tiny_encoder.backend_name
    model = {"name": str(tiny_st_dir), "fingerprint": tiny_encoder.fingerprint, "backend": config.backend}
    shard = plan_shards(list_inputs(config.input), config.shard_rows)[1]
    (tmp_path / "shards").mkdir()
    first = encode_shard(shard, tiny_encoder, config, tmp_path, model, _settings(model, config))
    path = tmp_path / "shards" / shard.name
    stamp = (path.stat().st_ino, path.stat().st_mtime_ns)
    again = encode_shard(shard, tiny_encoder, config, tmp_path, model, _settings(model, config))
    assert again == first and (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    assert first["sha256"] == sha256_file(path) and first["count"] == 40
    other = _settings(model, config) | {"normalize": False}  # other settings: the shard is encoded anew
    assert encode_shard(shard, tiny_encoder, config, tmp_path, model, other)["sha256"] != first["sha256"]


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


# -- one index from vector shards ------------------------------------------------------------------

DIM = 32


def vector_set(directory: Path, x: np.ndarray, shard_rows: int, *, fingerprint: str = "f" * 32,
               ids: list[str] | None = None, first: int = 0) -> Path:
    """Rows ``first..``: ids ``d{row}`` (unless given), texts ``문서 {row}``, metadata ``{"group": row % 5}``."""
    from koembed.scale.vector_set import write_vector_set

    rows = range(first, first + len(x))
    ids = ids or [f"d{i}" for i in rows]
    shards = ((ids[s:s + shard_rows], x[s:s + shard_rows], [f"문서 {i}" for i in rows[s:s + shard_rows]],
               [{"group": i % 5} for i in rows[s:s + shard_rows]]) for s in range(0, len(x), shard_rows))
    write_vector_set(directory, shards, model={"name": "test-vectors", "fingerprint": fingerprint, "backend": None})
    return directory


def one_process_index(directory: Path, x: np.ndarray, index_type: str):
    from koembed.index import Index

    index = Index.create(directory, x.shape[1], index_type=index_type, expected_count=len(x),
                         model_name="test-vectors", model_fingerprint="f" * 32)
    index.add_vectors([f"d{i}" for i in range(len(x))], x, [f"문서 {i}" for i in range(len(x))],
                      [{"group": i % 5} for i in range(len(x))])
    return index


def test_merged_flat_index_equals_one_process_index(tmp_path):
    from koembed.cli import main
    from koembed.index import Index, search, search_vectors
    from koembed.synthetic import clustered_matrix, queries_like

    x = clustered_matrix(3000, DIM, seed=1)
    q = queries_like(50, DIM, n_corpus=3000, seed=1)
    vector_set(tmp_path / "a", x[:1700], 400)
    vector_set(tmp_path / "b", x[1700:], 400, first=1700)
    assert main(["index", "--from-vectors", str(tmp_path / "a"), "--from-vectors", str(tmp_path / "b"),
                 "-o", str(tmp_path / "merged"), "--index-type", "flat", "--part-rows", "800", "--num-workers", "2",
                 "-q"]) == 0
    with Index.open(tmp_path / "merged") as merged, one_process_index(tmp_path / "one", x, "flat") as one:
        assert (merged.count, merged.manifest.spec, merged.manifest.model.fingerprint) == (3000, "Flat", "f" * 32)
        s1, r1 = search_vectors(merged, q, 10)
        s2, r2 = search_vectors(one, q, 10)
        assert np.array_equal(r1, r2) and np.allclose(s1, s2, atol=1e-6)  # same row ids: global, in input order
        hits = search(merged, q[:3], k=5, filter={"group": 2})
        assert all(h.metadata == {"group": 2} and h.text == f"문서 {h.id[1:]}" for row in hits for h in row)
        # The lexical part is built from the shards' texts: the same BM25 ranking as the one-process index's.
        assert merged.lexical is not None and merged.lexical.info["analyser"] == one.lexical.info["analyser"]
        texts = ["문서 1234", "문서 77", "문서 2999"]
        lexical = search(merged, texts, k=5, mode="lexical")
        assert [h.id for h in lexical[0]][:1] == ["d1234"]
        assert [[(h.id, round(h.score, 5)) for h in row] for row in lexical] == [
            [(h.id, round(h.score, 5)) for h in row] for row in search(one, texts, k=5, mode="lexical")]


def test_merged_ivf_index_is_on_disk_and_finds_what_one_process_finds(tmp_path):
    import faiss

    from koembed.index import Index, search, search_vectors
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
    from koembed.synthetic import clustered_matrix, queries_like

    n = 20_000
    x = clustered_matrix(n, DIM, n_clusters=200, seed=2)
    q = queries_like(200, DIM, n_corpus=n, n_clusters=200, seed=2)
    vector_set(tmp_path / "vec", x, 2500)
    result = build_index_from_vectors(VectorIndexConfig(vectors=[str(tmp_path / "vec")], output=str(tmp_path / "idx"),
                                                        index_type="IVF64,Flat", part_rows=5000, num_workers=2))
    assert (result.count, result.parts, result.built_parts) == (n, 4, 4)
    assert any(p.suffix == ".ivfdata" for p in (tmp_path / "idx").iterdir())
    with Index.open(tmp_path / "idx") as merged:
        ivf = faiss.extract_index_ivf(merged.faiss)
        assert isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)  # memory-mapped
        nprobe = merged.spec.search_defaults["nprobe"]
        _, got = search_vectors(merged, q, 10)
        # One process, same shared quantiser and nprobe: the same lists hold the same vectors.
        single = faiss.IndexIVFFlat(ivf.quantizer, DIM, ivf.nlist, faiss.METRIC_INNER_PRODUCT)
        single.add_with_ids(x, np.arange(n))
        single.nprobe = nprobe
        _, want = single.search(q, 10)
    agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), want.tolist(), strict=True)])
    assert agree >= 0.99
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), exact.tolist(), strict=True)])
    assert recall >= 0.9, recall

    # The folder can move (the FAISS file names its lists file by the path it had), and a writer takes the
    # lists into memory: its commit writes one self-contained FAISS file; the lists file goes a commit later.
    (tmp_path / "idx").rename(tmp_path / "moved")
    with Index.open(tmp_path / "moved", writable=True) as index:
        assert index.remove(["d0", "d1"]) == 2 and index.manifest.lists_file is None
        index.add_vectors(["new"], x[:1], ["새 문서"])
        assert not list((tmp_path / "moved").glob("*.ivfdata"))
    with Index.open(tmp_path / "moved") as index:
        top = search(index, x[:1], k=1)[0][0]
        assert index.count == n - 1 and (top.id, top.text) == ("new", "새 문서")


def test_killed_build_resumes_without_rebuilding_finished_parts(tmp_path):
    from koembed.index import Index
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
    from koembed.synthetic import clustered_matrix

    n = 60_000
    x = clustered_matrix(n, 64, n_clusters=300, seed=3)
    vector_set(tmp_path / "vec", x, 5_000)
    config = VectorIndexConfig(vectors=[str(tmp_path / "vec")], output=str(tmp_path / "idx"), index_type="IVF128,SQ8",
                               part_rows=5_000, num_workers=1)
    work = tmp_path / ".idx.from-vectors"
    script = ("import sys\nfrom koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors\n"
              f"build_index_from_vectors(VectorIndexConfig(vectors=[{str(tmp_path / 'vec')!r}], "
              f"output={str(tmp_path / 'idx')!r}, index_type='IVF128,SQ8', part_rows=5_000, num_workers=1))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(work.glob("part-*.faiss")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    built = len(list(work.glob("part-*.faiss")))
    assert 1 <= built < 12 and not (tmp_path / "idx").exists()
    result = build_index_from_vectors(config)
    assert (result.parts, result.built_parts, result.count) == (12, 12 - built, n)
    assert not work.exists()
    with Index.open(tmp_path / "idx") as index:
        assert index.count == n and int(index.faiss.ntotal) == n


def test_repeated_ids_keep_their_last_row(tmp_path):
    from koembed.index import Index, search_vectors
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
    from koembed.synthetic import clustered_matrix

    x = clustered_matrix(600, DIM, seed=4)
    ids = [f"d{i % 500}" for i in range(600)]  # d0..d99 twice: rows 500..599 are the later versions
    vector_set(tmp_path / "vec", x, 250, ids=ids)
    r = build_index_from_vectors(VectorIndexConfig(vectors=[str(tmp_path / "vec")], output=str(tmp_path / "idx"),
                                                   index_type="flat", part_rows=200, num_workers=1))
    assert (r.count, r.vectors, r.replaced) == (500, 600, 100)
    with Index.open(tmp_path / "idx") as index:
        assert index.get("d7")["text"] == "문서 507"
        _, rows = search_vectors(index, x[7:8], 600)
        assert 7 not in rows[0].tolist() and 507 in rows[0].tolist()


def test_mixed_models_dimensions_and_hnsw_are_refused(tmp_path):
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
    from koembed.synthetic import clustered_matrix

    x = clustered_matrix(300, DIM, seed=5)
    vector_set(tmp_path / "a", x, 100)
    vector_set(tmp_path / "b", x, 100, fingerprint="e" * 32)
    vector_set(tmp_path / "c", clustered_matrix(300, 16, seed=5), 100)

    def build(*sets: str, index_type: str = "flat") -> None:
        build_index_from_vectors(VectorIndexConfig(vectors=[str(tmp_path / s) for s in sets],
                                                   output=str(tmp_path / "idx"), index_type=index_type))

    with pytest.raises(IndexRefusedError, match=r"fingerprint eeeeeeeeeeee, dim 32\) cannot be indexed with .*"
                                                r"encode every input with one model"):
        build("a", "b")
    with pytest.raises(IndexRefusedError, match="dim 16.*encode every input with one model"):
        build("a", "c")
    with pytest.raises(IndexRefusedError, match="HNSW graphs cannot be built in parts"):
        build("a", index_type="hnsw")
    shard = tmp_path / "a" / "shards" / "part-000001.parquet"
    shard.write_bytes((tmp_path / "b" / "shards" / "part-000001.parquet").read_bytes())  # a shard from elsewhere
    with pytest.raises(IndexRefusedError, match="part-000001.parquet: does not match the manifest's checksum"):
        build("a")
    assert not (tmp_path / "idx").exists()


def test_parts_built_as_ray_tasks_equal_parts_built_locally(ray_local, tmp_path):
    from koembed.index import Index, search_vectors
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
    from koembed.synthetic import clustered_matrix, queries_like

    x = clustered_matrix(6000, DIM, n_clusters=60, seed=6)
    q = queries_like(100, DIM, n_corpus=6000, n_clusters=60, seed=6)
    vector_set(tmp_path / "vec", x, 1000)
    rows = {}
    for engine in ("ray", "local"):
        r = build_index_from_vectors(VectorIndexConfig(vectors=[str(tmp_path / "vec")], output=str(tmp_path / engine),
                                                       index_type="IVF16,SQ8", engine=engine, part_rows=2000,
                                                       num_workers=2, lexical=False))
        assert (r.parts, r.built_parts, r.count, r.analyser) == (3, 3, 6000, None)
        with Index.open(tmp_path / engine) as index:
            rows[engine] = search_vectors(index, q, 10)[1]
    # Each build trains its own quantiser on the same sample (same seed): the same index, whoever built the parts.
    assert np.array_equal(rows["ray"], rows["local"])
