"""The scoring team: the same dot products as one BLAS call, whoever computes which chunk."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from backend.stores import scoring
from backend.stores.scoring import ScoringTeam, team, usable_cores


@pytest.fixture
def vectors() -> np.ndarray:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((1003, 64)).astype(np.float32)  # not a multiple of a chunk
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def small_chunks():
    helpers = ScoringTeam(2, chunk_bytes=64 * 4 * 64)  # chunks of 64 rows
    yield helpers
    helpers.close()


def test_chunks_give_the_product_of_one_call(vectors, small_chunks):
    team()  # one BLAS thread, as in a server
    query = vectors[17]
    for rows in (vectors, vectors[:127], vectors[:128], vectors[:129], vectors[[5, 900, 3]]):
        np.testing.assert_array_equal(small_chunks.dot(rows, query), rows @ query)


def test_the_caller_does_everything_when_no_helper_is_free(vectors, small_chunks):
    release = threading.Event()
    for _ in range(small_chunks.helpers):  # both helpers stuck elsewhere (descheduled, busy)
        small_chunks._pool.submit(release.wait)
    try:
        done = ThreadPoolExecutor(1).submit(small_chunks.dot, vectors, vectors[3])
        np.testing.assert_array_equal(done.result(timeout=10), vectors @ vectors[3])
    finally:
        release.set()


def test_concurrent_callers_each_get_their_own_scores(vectors, small_chunks):
    queries = vectors[:32]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda q: small_chunks.dot(vectors, q), queries))
    for query, scores in zip(queries, results, strict=True):
        np.testing.assert_array_equal(scores, vectors @ query)


def test_numpy_blas_runs_on_one_thread_and_other_libraries_keep_theirs():
    import faiss  # noqa: F401  (its own OpenBLAS and OpenMP)

    before = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
    team()
    for lib in threadpool_info():
        if lib["user_api"] == "blas" and f"{os.sep}numpy" in lib["filepath"]:
            assert lib["num_threads"] == 1
        else:
            assert lib["num_threads"] == before[lib["filepath"]]


def test_a_forked_process_gets_a_team_of_its_own(vectors):
    parent = team()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's helper threads did not survive the fork
        try:
            ok = team() is not parent and np.array_equal(
                team().dot(vectors, vectors[1]), vectors @ vectors[1]
            )
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)  # never back into pytest
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_an_unknown_cpu_count_under_a_cgroup_quota_counts_as_one_core(monkeypatch, tmp_path):
    # Where sched_getaffinity is missing, os.cpu_count() may say None; a quota of 2 cores.
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("200000 100000\n")
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    monkeypatch.setattr(scoring, "Path", lambda _: cpu_max)
    assert usable_cores() == 1
