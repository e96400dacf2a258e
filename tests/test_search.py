"""Search: exact top-k over arrays and over store collections streamed with a memory budget,
query resolution (vectors, ids, binder-encoded text/files, arithmetic), and the FAISS index."""
from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from store_fakes import FakeBinder

from mmbind.search import TopK, knn_recall, search_collection, semantic_search, topk
from mmbind.search.streamed import plan_chunks
from mmbind.store import EmbeddingStore
from mmbind.store.mapped import chunk_spans


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact(queries, corpus, k):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    c = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    scores = q @ c.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


# --- arrays ----------------------------------------------------------------------------------
def test_semantic_search_matches_an_exact_sort():
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((1000, 24)).astype(np.float32) * 4
    queries = rng.standard_normal((7, 24)).astype(np.float32)
    result = semantic_search(queries, corpus, top_k=5, corpus_chunk_size=64, query_chunk_size=3)
    scores, rows = exact(queries, corpus, 5)
    assert [[h["corpus_id"] for h in hits] for hits in result] == rows.tolist()
    np.testing.assert_allclose([[h["score"] for h in hits] for hits in result], scores, rtol=1e-5)
    assert set(result[0][0]) == {"corpus_id", "score"}
    assert isinstance(result[0][0]["corpus_id"], int) and isinstance(result[0][0]["score"], float)


def test_topk_of_arrays_ranks_inner_products_in_chunks():
    rng = np.random.default_rng(6)
    gallery = rng.standard_normal((500, 12)).astype(np.float32) * rng.uniform(0.5, 3, (500, 1)).astype(np.float32)
    queries = rng.standard_normal((9, 12)).astype(np.float32)
    scores, rows = topk(queries, gallery, 7, gallery_chunk_size=64, query_chunk_size=4)
    raw = queries @ gallery.T  # inner products of the rows as given: long gallery rows rank higher
    want = np.argsort(-raw, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_allclose(scores, np.take_along_axis(raw, want, 1), rtol=1e-5)
    cos_scores, cos_rows = topk(queries, gallery, 7, cosine=True)
    want_scores, want_rows = exact(queries, gallery, 7)
    np.testing.assert_array_equal(cos_rows, want_rows)
    np.testing.assert_allclose(cos_scores, want_scores, rtol=1e-5)
    assert topk(queries, gallery[:3], 5)[1].shape == (9, 3)  # k larger than the gallery: all of it
    with pytest.raises(ValueError, match="k must be positive"):
        topk(queries, gallery, 0)


def test_semantic_search_accepts_tensors_and_small_corpora():
    torch = pytest.importorskip("torch")
    corpus = torch.eye(3)
    result = semantic_search(torch.tensor([[1.0, 0.1, 0.0]]), corpus, top_k=10)
    assert [h["corpus_id"] for h in result[0]] == [0, 1, 2]  # k larger than the corpus: all of it
    with pytest.raises(ValueError, match="expected shape \\(N, 3\\)"):
        semantic_search(np.ones((1, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="row 1 is zero"):
        semantic_search(np.array([[1.0, 0, 0], [0, 0, 0]]), corpus)


@pytest.mark.parametrize("width, k", [(37, 12), (3000, 12), (3000, 1500), (5000, 3)])
def test_topk_over_blocks_equals_a_full_sort_with_ties_by_row(width, k):
    # narrow blocks; wide ones whose first columns seed the state before the sparse merge; a k
    # larger than the seed
    rng = np.random.default_rng(1)
    n = 9000
    scores = np.round(rng.standard_normal((5, n)), 1).astype(np.float32)  # many ties
    top = TopK(5, k)
    for start in range(0, n, width):
        top.push(scores[:, start:start + width], start)
    got_scores, got_rows = top.result()
    order = np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)[:, :k]
    np.testing.assert_array_equal(got_scores, np.take_along_axis(scores, order, 1))
    # with ties the set of rows at the boundary may differ, but every kept row's score is right
    np.testing.assert_array_equal(np.take_along_axis(scores, got_rows, 1), got_scores)
    assert (np.diff(got_scores, axis=1) <= 0).all() and all(len(set(r)) == k for r in got_rows.tolist())


def test_plan_chunks_fits_the_budget_and_splits_queries():
    rows, per_pass = plan_chunks(64 * 2**20, dim=256, n_queries=100, top_k=10)
    assert per_pass == 100
    assert rows * (256 * 4 + 100 * 12) + 100 * 256 * 4 <= 64 * 2**20
    rows_small, per_pass_small = plan_chunks(2 * 2**20, dim=256, n_queries=5000, top_k=10)
    assert per_pass_small < 5000 and rows_small >= 256
    assert rows_small * (256 * 4 + per_pass_small * 12) <= 2 * 2**20
    with pytest.raises(ValueError, match="memory_budget=1000 bytes is too small"):
        plan_chunks(1000, dim=256, n_queries=1, top_k=10)


# --- store collections -------------------------------------------------------------------------
@pytest.fixture
def filled(tmp_path):
    rng = np.random.default_rng(2)
    binder = FakeBinder(dim=32)
    texts = [f"simulated phrase {i}" for i in range(3000)]
    with EmbeddingStore(tmp_path / "s.h5") as store:
        store.create_collection("texts", modality="text", dim=32, fingerprint=binder.fingerprint(), tau=0.05)
        for start in range(0, len(texts), 500):
            chunk = texts[start:start + 500]
            store.add("texts", binder.encode(chunk, "text"), fingerprint=binder.fingerprint(), ids=chunk,
                      labels=[i % 10 for i in range(start, start + len(chunk))],
                      metas=[{"n": i} for i in range(start, start + len(chunk))])
        store.create_collection("other", modality="image", dim=32, fingerprint="another-binder")
        store.add("other", unit(rng, 5, 32), fingerprint="another-binder")
        yield store, binder, texts


@pytest.mark.parametrize("budget", [None, 200_000, 60_000])
def test_streamed_search_is_exact_for_any_budget(filled, budget):
    store, binder, texts = filled
    queries = unit(np.random.default_rng(3), 40, 32)
    scores, rows = search_collection(store, queries, "texts", top_k=10, memory_budget=budget)
    want_scores, want_rows = exact(queries, store.vectors("texts"), 10)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    if budget == 60_000:  # tiny: several chunks and several query passes were needed
        chunk_rows, per_pass = plan_chunks(budget, 32, 40, 10)
        assert per_pass < 40 and chunk_rows < 3000


@pytest.mark.parametrize("chunk_rows", [7, 1024, 5000])
def test_mapped_copied_and_prefetched_reads_give_the_same_rows(filled, chunk_rows):
    store = filled[0]
    want = store.vectors("texts")
    for start, stop in ((0, None), (13, 2999)):
        reads = {name: [(first, block.copy()) for first, block in
                        store.iter_vectors("texts", chunk_rows, start, stop, **options)]
                 for name, options in (("mapped", {}), ("copied", {"mapped": False}),
                                       ("prefetched", {"mapped": False, "prefetch": True}))}
        for name, blocks in reads.items():
            firsts = [first for first, _ in blocks]
            assert firsts[0] == start and all(len(b) <= chunk_rows for _, b in blocks), name
            assert all(f + len(b) == g for (f, b), g in zip(blocks, firsts[1:])), name  # no gap, no overlap
            np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), want[start:stop], err_msg=name)
    first, block = next(store.iter_vectors("texts", chunk_rows))
    assert not block.flags.writeable  # a view of the file: it cannot be written through
    blocks = store.iter_vectors("texts", 7, mapped=False, prefetch=True)
    next(blocks)
    blocks.close()  # a caller that stops early leaves no reader thread behind


def test_mapped_reads_follow_chunks_that_are_not_back_to_back(tmp_path):
    rng = np.random.default_rng(7)
    dim = 256  # 1024 rows per 1 MiB chunk
    with EmbeddingStore(tmp_path / "two.h5") as store:
        for name in ("a", "b"):
            store.create_collection(name, modality="x", dim=dim, fingerprint="f")
        for _ in range(3):  # appending to each in turn interleaves their chunks in the file
            for name in ("a", "b"):
                store.add(name, unit(rng, 1500, dim), fingerprint="f", hashes=None)
        want = store.vectors("a")
        spans = chunk_spans(store.file["collections/a/embeddings"], 0, len(want), 10**9)
        assert spans is not None and len(spans) > 1  # one span per back-to-back run of chunks
        blocks = list(store.iter_vectors("a", 4096))
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), want)
        # what the writer changes in place reads back through the mapping at once
        new = unit(rng, 2, dim)
        store.replace("a", [5, 3000], new, fingerprint="f", hashes=["0" * 64, "1" * 64])
        mapped = np.concatenate([b for _, b in store.iter_vectors("a", 4096)])
        np.testing.assert_array_equal(mapped[[5, 3000]], new)


def test_a_file_system_that_cannot_map_files_gets_copies(filled, monkeypatch):
    import mmap

    def refuse(*args, **kwargs):
        raise OSError(19, "No such device")

    monkeypatch.setattr(mmap, "mmap", refuse)
    store = filled[0]
    blocks = list(store.iter_vectors("texts", 1000))
    assert all(b.flags.writeable for _, b in blocks)  # the reused buffer, not a mapping
    queries = unit(np.random.default_rng(3), 4, 32)
    np.testing.assert_array_equal(search_collection(store, queries, "texts", top_k=5)[1],
                                  exact(queries, store.vectors("texts"), 5)[1])


def test_chunks_that_cannot_be_mapped_are_copied(tmp_path):
    import h5py

    with h5py.File(tmp_path / "f.h5", "w") as f:
        plain = f.create_dataset("plain", data=np.ones((100, 8), np.float32), chunks=(10, 8))
        packed = f.create_dataset("packed", data=np.ones((100, 8), np.float32), chunks=(10, 8), compression="gzip")
        doubles = f.create_dataset("doubles", data=np.ones((100, 8)), chunks=(10, 8))
        assert [s.rows for s in chunk_spans(plain, 5, 95, 40)] == [35, 40, 15]
        assert chunk_spans(packed, 0, 100, 40) is None and chunk_spans(doubles, 0, 100, 40) is None


def test_search_memory_stays_within_the_budget(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    dim, n = 64, 120_000  # 30 MB of vectors
    with EmbeddingStore(tmp_path / "big.h5") as store:
        store.create_collection("v", modality="x", dim=dim, fingerprint="f")
        for _ in range(n // 20_000):
            store.add("v", unit(rng, 20_000, dim), fingerprint="f", hashes=None)
        queries = unit(rng, 50, dim)
        budget = 4 * 2**20
        blocks = []
        iter_vectors = store.iter_vectors

        def recording(*args, **kwargs):
            for first, block in iter_vectors(*args, **kwargs):
                blocks.append(block.nbytes)
                yield first, block

        monkeypatch.setattr(store, "iter_vectors", recording)
        tracemalloc.start()
        scores, rows = search_collection(store, queries, "v", top_k=10, memory_budget=budget)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # numpy's allocations, plus the mapped file pages of the block in use and the next one
        assert peak + 2 * max(blocks) < budget, f"search used {peak} + 2 x {max(blocks)} bytes, budget {budget}"
        assert peak + max(blocks) > budget // 4  # the budget is used, not ignored
        want = exact(queries, store.vectors("v"), 10)[1]
        assert knn_recall(rows, want) == 1.0


def test_store_search_returns_entries(filled):
    store, binder, texts = filled
    query = binder.encode([texts[42]], "text")[0]
    hits = store.search(query, "texts", top_k=3)
    assert len(hits) == 1 and len(hits[0]) == 3
    top = hits[0][0]
    assert top["corpus_id"] == 42 and top["id"] == texts[42] and top["label"] == "2" and top["meta"] == {"n": 42}
    assert top["path"] is None and top["score"] == pytest.approx(1.0, abs=1e-5)
    assert hits[0][0]["score"] >= hits[0][1]["score"] >= hits[0][2]["score"]
    many = store.search(binder.encode(texts[:4], "text"), "texts", top_k=1)
    assert [h[0]["corpus_id"] for h in many] == [0, 1, 2, 3]


def test_queries_by_id_text_vec_and_arithmetic(filled):
    store, binder, texts = filled
    by_id = store.search(f'id:"texts/{texts[7]}"', "texts", top_k=1)[0][0]
    by_row = store.search("id:texts/#7", "texts", top_k=1)[0][0]
    by_text = store.search(f'text:"{texts[7]}"', "texts", top_k=1, binder=binder)[0][0]
    by_vec = store.search("vec:q", "texts", top_k=1, vectors={"q": binder.encode([texts[7]], "text")[0] * 9})[0][0]
    assert by_id["corpus_id"] == by_row["corpus_id"] == by_text["corpus_id"] == by_vec["corpus_id"] == 7
    # 0.5*a + 0.5*b lands between a and b: both rank above everything else
    mix = store.search(f"0.5*id:texts/#10 + 0.5*text:'{texts[20]}'", "texts", top_k=2, binder=binder)[0]
    assert {h["corpus_id"] for h in mix} == {10, 20}
    assert mix[0]["score"] == pytest.approx(np.sqrt(0.5 * (1 + float(store.vectors("texts", [10])[0] @
                                                                     store.vectors("texts", [20])[0]))), abs=1e-4)
    # a mixed list of strings and vectors
    mixed = store.search([binder.encode([texts[3]], "text")[0], "id:texts/#5"], "texts", top_k=1)
    assert [m[0]["corpus_id"] for m in mixed] == [3, 5]


def test_queries_from_another_space_or_shape_are_refused(filled):
    store, binder, texts = filled
    with pytest.raises(ValueError, match="comes from binder fake-32-9, but collection 'texts' was made by binder fake-32-0"):
        store.search("text:hello", "texts", binder=FakeBinder(dim=32, seed=9))
    with pytest.raises(ValueError, match="id:other/#0 comes from binder another-binder"):
        store.search("id:other/#0", "texts")
    with pytest.raises(ValueError, match="query vectors have 5 dimensions; collection 'texts' stores 32-d"):
        store.search(np.ones(5), "texts")
    with pytest.raises(ValueError, match="needs a binder"):
        store.search("text:hello", "texts")
    with pytest.raises(ValueError, match="no vector named 'nope'"):
        store.search("vec:nope", "texts")
    with pytest.raises(ValueError, match="the binder has no 'depth' modality"):
        store.search("depth:x.png", "texts", binder=binder)
    with pytest.raises(ValueError, match="missing.wav: file not found"):
        store.search("audio:missing.wav", "texts", binder=binder)
    with pytest.raises(ValueError, match="index must be None"):
        store.search(np.ones(32), "texts", index="annoy")


def test_a_search_of_an_empty_collection_is_empty(tmp_path):
    with EmbeddingStore(tmp_path / "e.h5") as store:
        store.create_collection("e", modality="x", dim=4, fingerprint="f")
        assert store.search(np.ones(4), "e") == [[]]


# --- FAISS -------------------------------------------------------------------------------------
def test_faiss_indexes_agree_with_brute_force_and_detect_staleness(filled, tmp_path):
    pytest.importorskip("faiss")
    from mmbind.search.faiss_index import StaleIndexError, build_index, index_info, index_paths

    store, binder, texts = filled
    queries = unit(np.random.default_rng(5), 20, 32)
    _, truth = search_collection(store, queries, "texts", top_k=10)
    path = build_index(store, "texts", "flat")
    assert path == tmp_path / "s.h5.texts.faiss" and path.is_file()
    assert index_paths(store.path, "texts")[1].is_file()
    meta = index_info(store, "texts")
    assert (meta["kind"], meta["count"], meta["fingerprint"], meta["dim"]) == ("flat", 3000, "fake-32-0", 32)
    flat = store.search(queries, "texts", top_k=10, index="faiss")
    assert knn_recall(np.array([[h["corpus_id"] for h in q] for q in flat]), truth) == 1.0
    assert flat[0][0]["id"] == texts[flat[0][0]["corpus_id"]]

    build_index(store, "texts", "ivf", nlist=16)
    ivf_all = store.search(queries, "texts", top_k=10, index="faiss", nprobe=16)  # every list: exact
    assert knn_recall(np.array([[h["corpus_id"] for h in q] for q in ivf_all]), truth) == 1.0
    build_index(store, "texts", "hnsw", hnsw_m=16)
    hnsw = store.search(queries, "texts", top_k=10, index="faiss", ef_search=128)
    assert knn_recall(np.array([[h["corpus_id"] for h in q] for q in hnsw]), truth) >= 0.9

    store.add("texts", binder.encode(["one more"], "text"), fingerprint=binder.fingerprint())
    with pytest.raises(StaleIndexError, match="built from 3000 entries \\(collection now: 3001\\)"):
        store.search(queries, "texts", index="faiss")
    build_index(store, "texts", "flat")
    assert len(store.search(queries, "texts", index="faiss")[0]) == 10
    with pytest.raises(FileNotFoundError, match="no FAISS index for collection 'other'"):
        store.search(np.ones(32), "other", index="faiss")
    with pytest.raises(ValueError, match="index kind must be one of flat, ivf, hnsw"):
        build_index(store, "texts", "lsh")


def test_faiss_is_optional(filled, monkeypatch):
    from mmbind.search.faiss_index import build_index

    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss-cpu were not installed
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        build_index(filled[0], "texts")
