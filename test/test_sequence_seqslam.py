"""SeqSLAM matcher: contrast normalisation and velocity search against slow loops, online == offline."""

from __future__ import annotations

import numpy as np
import pytest

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.sequence import (
    DEFAULT_VELOCITIES,
    OnlineSeqSlamMatcher,
    OnlineSequenceMatcher,
    local_contrast,
    match_sequences,
    online_matcher,
    seqslam_scores,
    sequence_scores,
    velocity_offsets,
)


def slow_contrast(S, r):
    out = np.zeros_like(S, dtype=float)
    for q in range(S.shape[0]):
        for p in range(S.shape[1]):
            w = S[q, max(0, p - r): p + r + 1]
            sd = w.std()
            out[q, p] = (S[q, p] - w.mean()) / sd if sd > 0 else 0.0
    return out


def slow_seqslam(S, L, velocities, r):
    N = slow_contrast(S, r)
    n_q, n_p = S.shape
    out = np.full((n_q, n_p), -np.inf)
    for q in range(L - 1, n_q):
        for p in range(n_p):
            for v in velocities:
                idx = [p - int(np.floor(v * k + 0.5)) for k in range(L)]
                if min(idx) < 0:
                    continue
                out[q, p] = max(out[q, p], sum(N[q - k, idx[k]] for k in range(L)))
    return out


@pytest.mark.parametrize("r", [0, 1, 3, 5])
def test_local_contrast_matches_windowed_mean_and_std(r):
    S = np.random.default_rng(r).random((6, 17)) * 5
    np.testing.assert_allclose(local_contrast(S, r), slow_contrast(S, r), rtol=1e-10, atol=1e-12)


def test_local_contrast_flat_rows_are_zero_and_shift_scale_invariant():
    assert np.array_equal(local_contrast(np.full((2, 9), 3.0), 2), np.zeros((2, 9)))
    S = np.random.default_rng(1).random((3, 12))
    np.testing.assert_allclose(local_contrast(S * 4 + 7, 3), local_contrast(S, 3), atol=1e-12)


@pytest.mark.parametrize("shape,L,velocities,r", [
    ((14, 20), 4, DEFAULT_VELOCITIES, 5), ((9, 9), 3, (1.0,), 2), ((12, 30), 6, (0.5, 1.0, 2.0), 4),
    ((5, 8), 1, DEFAULT_VELOCITIES, 3), ((4, 6), 5, DEFAULT_VELOCITIES, 2)])
def test_seqslam_scores_match_brute_force(shape, L, velocities, r):
    S = np.random.default_rng(L).random(shape)
    np.testing.assert_allclose(seqslam_scores(S, L, velocities, r), slow_seqslam(S, L, velocities, r),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 5, 10])
def test_online_seqslam_equals_offline_bit_for_bit_with_bounded_memory(L):
    S = np.random.default_rng(10 + L).random((40, 33)) * 3
    offline = seqslam_scores(S, L)
    matcher = OnlineSeqSlamMatcher(L, 33)
    rows = []
    for s in S:
        rows.append(matcher.update(s))
        assert matcher.n_buffered <= L
    assert np.array_equal(np.stack(rows), offline)
    matcher.reset()
    assert matcher.n_buffered == 0
    first = matcher.update(S[0])
    if L == 1:  # one frame is a whole sequence: the reset matcher answers it as before
        assert np.array_equal(first, offline[0])
    else:  # the history restarted: no full sequence yet, no score
        assert not np.isfinite(first).any()


def test_velocity_search_follows_a_slower_route_the_diagonal_misses():
    # Queries advance 0.8 places per frame: SeqSLAM's v = 0.8 trajectory follows
    # them, the diagonal (v = 1) drifts off.
    n_q, n_p, L = 60, 60, 10
    truth = np.floor(np.arange(n_q) * 0.8 + 0.5).astype(int)
    rng = np.random.default_rng(0)
    S = rng.random((n_q, n_p))
    S[np.arange(n_q), truth] += 1.5
    seq = np.argmax(seqslam_scores(S, L), axis=1)[L - 1:]
    diag = np.argmax(sequence_scores(S, L), axis=1)[L - 1:]
    t = truth[L - 1:]
    # Rounding makes the true path 1 place off the straight line at some frames.
    assert np.all(np.abs(seq - t) <= 1)
    assert np.mean(seq == t) > 0.75
    assert np.mean(diag == t) < 0.3


def test_match_sequences_by_name():
    S = np.random.default_rng(2).random((8, 11))
    assert np.array_equal(match_sequences(S, 3, "diagonal"), sequence_scores(S, 3))
    assert np.array_equal(match_sequences(S, 3, "seqslam"), seqslam_scores(S, 3))
    assert isinstance(online_matcher("diagonal", 3, 11), OnlineSequenceMatcher)
    assert isinstance(online_matcher("seqslam", 3, 11), OnlineSeqSlamMatcher)
    with pytest.raises(ConfigError, match="diagonal, seqslam"):
        match_sequences(S, 3, "hmm")


def test_bad_inputs_are_config_errors():
    with pytest.raises(ConfigError):
        local_contrast(np.array([[1.0, np.inf]]), 1)
    with pytest.raises(ConfigError):
        velocity_offsets([], 3)
    with pytest.raises(ConfigError):
        OnlineSeqSlamMatcher(0, 5)
    with pytest.raises(ConfigError):
        OnlineSeqSlamMatcher(3, 5).update(np.zeros(4))
    assert velocity_offsets((0.8, 1.2), 4).tolist() == [[0, 1, 2, 2], [0, 1, 2, 4]]
