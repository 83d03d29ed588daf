"""Bag-of-words corpora for topic models: the Reuters corpus of the `lda` package, the UCI
`docword`/`vocab` format, SciPy sparse matrices, and the document-completion split.

A corpus is a count matrix `[n_docs, n_vocab]` (document d used word w `counts[d, w]` times) with its
vocabulary. Topic models here take dense count arrays; `Corpus.dense()` gives one.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse

__all__ = [
    "BagOfWords",
    "Corpus",
    "from_sparse",
    "load_reuters",
    "load_uci_bag_of_words",
    "split_documents",
    "split_words",
    "to_bag_of_words",
]


class Corpus(NamedTuple):
    """A bag-of-words corpus.

    Attributes:
      counts: `scipy.sparse.csr_matrix` of non-negative integer counts, `[n_docs, n_vocab]`.
      vocab: the `n_vocab` words, in column order.
    """

    counts: scipy.sparse.csr_matrix
    vocab: list[str]

    def dense(self, dtype=np.float32) -> np.ndarray:
        """The counts as a dense array `[n_docs, n_vocab]`."""
        return np.asarray(self.counts.toarray(), dtype)


def from_sparse(matrix, vocab=None) -> Corpus:
    """A `Corpus` from any SciPy sparse (or dense) count matrix `[n_docs, n_vocab]`.

    Args:
      matrix: non-negative integer counts.
      vocab: the words (default `"w0", "w1", ...`).

    Raises:
      ValueError: a matrix that is not 2-D, has negative or non-integer entries, or a vocabulary
        whose length is not `n_vocab`.
    """
    counts = scipy.sparse.csr_matrix(matrix)
    if counts.ndim != 2:
        raise ValueError(f"a count matrix must be [n_docs, n_vocab], got shape {counts.shape}")
    data = counts.data
    if data.size and (data.min() < 0 or not np.all(np.equal(np.mod(data, 1), 0))):
        raise ValueError("a count matrix must hold non-negative integers")
    counts = counts.astype(np.int64)
    vocab = [f"w{i}" for i in range(counts.shape[1])] if vocab is None else [str(w) for w in vocab]
    if len(vocab) != counts.shape[1]:
        raise ValueError(f"vocab has {len(vocab)} words but the matrix has {counts.shape[1]} columns")
    return Corpus(counts, vocab)


def load_reuters() -> Corpus:
    """The 395 Reuters news stories packaged with the `lda` package (4258 words, 84,010 tokens).

    Raises:
      ImportError: the `lda` package is not installed (`pip install lda`).
    """
    try:
        import lda.datasets
    except ImportError as error:
        raise ImportError("the default topic-model corpus comes with the `lda` package: "
                          "pip install lda") from error
    return from_sparse(lda.datasets.load_reuters(), lda.datasets.load_reuters_vocab())


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def load_uci_bag_of_words(docword: str | os.PathLike, vocab: str | os.PathLike) -> Corpus:
    """Reads the UCI bag-of-words format (`docword.NAME.txt[.gz]` and `vocab.NAME.txt`).

    `docword` starts with three lines D, W, NNZ, then NNZ lines `docID wordID count` (1-based ids);
    `vocab` has W lines, one word each.

    Raises:
      FileNotFoundError: a missing file.
      ValueError: a header that disagrees with the entries or the vocabulary.
    """
    docword, vocab = Path(docword), Path(vocab)
    for path in (docword, vocab):
        if not path.is_file():
            raise FileNotFoundError(f"missing bag-of-words file {str(path)!r}")
    with _open_text(docword) as f:
        n_docs, n_vocab, nnz = (int(f.readline()) for _ in range(3))
        table = np.loadtxt(f, dtype=np.int64, ndmin=2)
    words = vocab.read_text().split()
    if table.shape != (nnz, 3) or len(words) != n_vocab:
        raise ValueError(f"{docword.name}: header says {nnz} entries and {n_vocab} words, found "
                         f"{table.shape[0]} entries and {len(words)} words in {vocab.name}")
    if nnz and (table[:, 0].min() < 1 or table[:, 0].max() > n_docs or table[:, 1].min() < 1
                or table[:, 1].max() > n_vocab):
        raise ValueError(f"{docword.name}: document or word ids outside [1, D] x [1, W] = "
                         f"[1, {n_docs}] x [1, {n_vocab}]")
    counts = scipy.sparse.coo_matrix((table[:, 2], (table[:, 0] - 1, table[:, 1] - 1)),
                                     shape=(n_docs, n_vocab))
    return from_sparse(counts.tocsr(), words)


def split_documents(n_docs: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random train/test split of document indices (numpy generator seeded with `seed`).

    Returns:
      `(train_index, test_index)`, sorted int arrays.

    Raises:
      ValueError: `test_fraction` outside (0, 1) or a split with an empty side.
    """
    n_test = int(round(test_fraction * n_docs))
    if not 0 < test_fraction < 1 or not 0 < n_test < n_docs:
        raise ValueError(f"test_fraction={test_fraction} must leave documents on both sides of {n_docs}")
    permutation = np.random.default_rng(seed).permutation(n_docs)
    return np.sort(permutation[n_test:]), np.sort(permutation[:n_test])


def split_words(counts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Document completion: splits each document's tokens at random into two halves.

    Args:
      counts: `[n_docs, n_vocab]` integer counts.
      seed: the numpy generator's seed.

    Returns:
      `(observed, held_out)`, both `[n_docs, n_vocab]`, summing to `counts`; a document of n tokens
      puts `ceil(n / 2)` in `observed`.
    """
    counts = np.asarray(counts).astype(np.int64)
    rng = np.random.default_rng(seed)
    observed = np.zeros_like(counts)
    for d, row in enumerate(counts):
        tokens = rng.permutation(np.repeat(np.arange(row.size), row))
        observed[d] = np.bincount(tokens[: (tokens.size + 1) // 2], minlength=row.size)
    return observed, counts - observed


class BagOfWords(NamedTuple):
    """Padded per-document word lists: a sparse corpus as two dense arrays `[n_docs, max_words]`.

    Attributes:
      word_index: int32 word ids; document d's distinct words first, then padding (id 0).
      counts: float32 counts of those words; 0 at the padding, so padded entries add nothing to a
        likelihood `sum_l counts[d, l] * log p(word_index[d, l])`.
    """

    word_index: np.ndarray
    counts: np.ndarray


def to_bag_of_words(counts, max_words: int | None = None) -> BagOfWords:
    """Converts a count matrix `[n_docs, n_vocab]` (dense or SciPy sparse) to a `BagOfWords`.

    Args:
      counts: non-negative counts.
      max_words: the padded width L (default: the largest number of distinct words in a document).

    Returns:
      A `BagOfWords` of two arrays `[n_docs, L]`.

    Raises:
      ValueError: `counts` is not 2-D, or a document has more than `max_words` distinct words.
    """
    matrix = scipy.sparse.csr_matrix(counts)
    if matrix.ndim != 2:
        raise ValueError(f"counts must be [n_docs, n_vocab], got shape {matrix.shape}")
    matrix.eliminate_zeros()
    n_words = np.diff(matrix.indptr)
    width = int(max(n_words.max(initial=0), 1)) if max_words is None else int(max_words)
    if n_words.max(initial=0) > width:
        raise ValueError(f"a document has {n_words.max()} distinct words, more than max_words={width}")
    word_index = np.zeros([matrix.shape[0], width], np.int32)
    values = np.zeros([matrix.shape[0], width], np.float32)
    for d in range(matrix.shape[0]):
        start, stop = matrix.indptr[d], matrix.indptr[d + 1]
        word_index[d, : stop - start] = matrix.indices[start:stop]
        values[d, : stop - start] = matrix.data[start:stop]
    return BagOfWords(word_index, values)
