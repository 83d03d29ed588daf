"""Bag-of-words loaders and the document-completion split."""

import gzip

import numpy as np
import pytest
import scipy.sparse

from models.data import corpus


def test_uci_format_round_trip(tmp_path):
    counts = np.array([[0, 2, 1], [3, 0, 0]])
    rows, cols = np.nonzero(counts)
    entries = [f"{r + 1} {c + 1} {counts[r, c]}" for r, c in zip(rows, cols, strict=True)]
    lines = ["2", "3", str(rows.size)] + entries
    with gzip.open(tmp_path / "docword.toy.txt.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    (tmp_path / "vocab.toy.txt").write_text("apple\nbanana\ncherry\n")
    loaded = corpus.load_uci_bag_of_words(tmp_path / "docword.toy.txt.gz", tmp_path / "vocab.toy.txt")
    np.testing.assert_array_equal(loaded.dense(np.int64), counts)
    assert loaded.vocab == ["apple", "banana", "cherry"]
    (tmp_path / "vocab.bad.txt").write_text("apple\n")
    with pytest.raises(ValueError, match="3 words"):
        corpus.load_uci_bag_of_words(tmp_path / "docword.toy.txt.gz", tmp_path / "vocab.bad.txt")
    with pytest.raises(FileNotFoundError, match="missing"):
        corpus.load_uci_bag_of_words(tmp_path / "nope.txt", tmp_path / "vocab.toy.txt")


def test_from_sparse_checks_counts():
    matrix = scipy.sparse.random(5, 7, density=0.4, random_state=0, format="csr")
    matrix.data = np.ceil(matrix.data * 5)
    loaded = corpus.from_sparse(matrix)
    assert loaded.counts.shape == (5, 7) and loaded.vocab[0] == "w0"
    with pytest.raises(ValueError, match="non-negative integers"):
        corpus.from_sparse(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="vocab has 1 words"):
        corpus.from_sparse(np.array([[1, 1]]), vocab=["a"])


def test_reuters_corpus():
    pytest.importorskip("lda", reason="the Reuters corpus comes with the `lda` package")
    reuters = corpus.load_reuters()
    assert reuters.counts.shape == (395, 4258) and reuters.counts.sum() == 84010
    assert len(reuters.vocab) == 4258


def test_document_completion_split():
    counts = np.random.default_rng(0).poisson(1.0, size=(6, 20))
    observed, held_out = corpus.split_words(counts, seed=1)
    np.testing.assert_array_equal(observed + held_out, counts)
    assert np.all(observed >= 0) and np.all(held_out >= 0)
    np.testing.assert_array_equal(observed.sum(1), (counts.sum(1) + 1) // 2)
    train, test = corpus.split_documents(10, 0.3, seed=0)
    assert len(test) == 3 and set(train) | set(test) == set(range(10)) and not set(train) & set(test)
    with pytest.raises(ValueError, match="test_fraction"):
        corpus.split_documents(10, 1.0, seed=0)
