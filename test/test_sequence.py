"""Sequence matching: brute force, the reference's distance form, online == offline."""

from __future__ import annotations

import numpy as np
import pytest

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.sequence import OnlineSequenceMatcher, sequence_scores


def brute_force(S, L):
    n_q, n_p = S.shape
    out = np.full((n_q, n_p), -np.inf)
    for q in range(L - 1, n_q):
        for p in range(L - 1, n_p):
            out[q, p] = sum(S[q - k, p - k] for k in range(L))
    return out


@pytest.mark.parametrize("shape,L", [((12, 9), 3), ((9, 12), 4), ((7, 7), 7), ((5, 8), 2)])
def test_sequence_scores_vs_brute_force(shape, L):
    S = np.random.default_rng(L).random(shape)
    np.testing.assert_allclose(sequence_scores(S, L), brute_force(S, L), rtol=1e-12)


def test_sequence_scores_small_hand_example():
    S = np.arange(9, dtype=float).reshape(3, 3)
    out = sequence_scores(S, 2)
    expected = np.full((3, 3), -np.inf)
    expected[1, 1] = S[1, 1] + S[0, 0]
    expected[1, 2] = S[1, 2] + S[0, 1]
    expected[2, 1] = S[2, 1] + S[1, 0]
    expected[2, 2] = S[2, 2] + S[1, 1]
    np.testing.assert_array_equal(out, expected)


def test_length_one_is_float_copy():
    S = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = sequence_scores(S, 1)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, S)
    out[0, 0] = 99
    assert S[0, 0] == 0


def test_length_longer_than_matrix_is_all_neg_inf():
    assert np.all(np.isneginf(sequence_scores(np.ones((3, 10)), 4)))
    assert np.all(np.isneginf(sequence_scores(np.ones((10, 3)), 4)))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_length(bad):
    with pytest.raises(ConfigError):
        sequence_scores(np.ones((4, 4)), bad)
    with pytest.raises(ConfigError):
        OnlineSequenceMatcher(bad, 4)


def test_ranks_like_reference_start_anchored_distances():
    # Reference: D indexed (reference r, query q), D_seq[r, q] = sum_k D[r+k, q+k],
    # D = max(S) - S.  End-anchored argmax must be the reference argmin shifted by L-1.
    rng = np.random.default_rng(7)
    n_q, n_p, L = 30, 25, 5
    S = rng.random((n_q, n_p))
    D = (S.max() - S).T
    D_seq = np.array(
        [[sum(D[r + k, q + k] for k in range(L)) for q in range(n_q - L + 1)]
         for r in range(n_p - L + 1)]
    )
    ours = sequence_scores(S, L)
    np.testing.assert_array_equal(
        np.argmax(ours[L - 1 :], axis=1), np.argmin(D_seq, axis=0) + L - 1
    )
    assert np.all(np.isneginf(ours[: L - 1]))


@pytest.mark.parametrize("L", [1, 2, 5])
def test_online_equals_offline_bitwise(L):
    S = np.random.default_rng(L).random((40, 30)).astype(np.float32)
    offline = sequence_scores(S, L)
    matcher = OnlineSequenceMatcher(L, 30)
    buf = np.empty(30, dtype=np.float32)
    for q in range(40):
        buf[:] = S[q]  # reused input buffer must not alias the history
        row = matcher.update(buf)
        assert np.array_equal(row, offline[q]), q


def test_online_reset_restarts_warm_up():
    S = np.random.default_rng(0).random((10, 8))
    m = OnlineSequenceMatcher(3, 8)
    for q in range(6):
        m.update(S[q])
    m.reset()
    assert m.n_buffered == 0 and not m.ready
    rows = [m.update(S[q]) for q in range(3)]
    assert np.all(np.isneginf(rows[0])) and np.all(np.isneginf(rows[1]))
    np.testing.assert_array_equal(rows[2], sequence_scores(S[:3], 3)[2])


def test_online_history_is_bounded():
    m = OnlineSequenceMatcher(4, 16)
    rng = np.random.default_rng(1)
    for _ in range(1000):
        m.update(rng.random(16))
    assert m.n_buffered == 4 == len(m._history)


def test_online_rejects_wrong_shape():
    m = OnlineSequenceMatcher(2, 5)
    with pytest.raises(ConfigError):
        m.update(np.zeros(4))
    with pytest.raises(ConfigError):
        OnlineSequenceMatcher(2, 0)
