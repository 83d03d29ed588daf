"""Probabilistic matrix factorisation with HMC: the log joint, recovery of a synthetic low-rank
matrix, and `python -m models pmf` end to end on a small MovieLens subset."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.log_joint import make_log_joint
from models import pmf


def _synthetic(key, n_users=30, n_items=40, rank=2, noise_std=0.3, observed_fraction=0.5):
    """A matrix drawn from the model (unit prior sd), split into observed and held-out entries."""
    key_u, key_v, key_noise, key_mask = jax.random.split(key, 4)
    u = np.asarray(jax.random.normal(key_u, (n_users, rank)))
    v = np.asarray(jax.random.normal(key_v, (n_items, rank)))
    ratings = u @ v.T + noise_std * np.asarray(jax.random.normal(key_noise, (n_users, n_items)))
    is_train = np.asarray(jax.random.uniform(key_mask, (n_users, n_items))) < observed_fraction
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")

    def pick(mask):
        return pmf.Ratings(users[mask].astype(np.int32), items[mask].astype(np.int32),
                           ratings[mask].astype(np.float32), n_users, n_items)

    return pick(is_train), pick(~is_train)


def test_log_joint_matches_hand_written():
    key_u, key_v, key_r = jax.random.split(jax.random.key(0), 3)
    user, item = jnp.array([0, 2, 2, 1, 0]), jnp.array([1, 0, 3, 3, 2])
    u, v = jax.random.normal(key_u, (3, 2)), jax.random.normal(key_v, (4, 2))
    r = jax.random.normal(key_r, (5,)) + 3.0
    model = make_log_joint(pmf.build_pmf(user, item, 3, 4, 2, prior_std=0.7, noise_std=0.4, offset=3.0),
                           {"r": r})
    norm = jax.scipy.stats.norm.logpdf
    mean = jnp.array([u[a] @ v[b] for a, b in zip(user.tolist(), item.tolist(), strict=True)]) + 3.0
    expected = jnp.sum(norm(u, 0.0, 0.7)) + jnp.sum(norm(v, 0.0, 0.7)) + jnp.sum(norm(r, mean, 0.4))
    np.testing.assert_allclose(model.log_joint_fn({"u": u, "v": v}), expected, rtol=1e-5)


def test_r_test_node_is_the_predicted_rating():
    # the deterministic node sample() returns equals <U[u], V[i]> + offset at the model's own U, V
    user, item = jnp.array([0, 2, 1]), jnp.array([1, 0, 3])
    test_user, test_item = jnp.array([2, 1]), jnp.array([3, 0])
    bn = pmf.build_pmf(user, item, 3, 4, 2, offset=3.0, test_user=test_user,
                       test_item=test_item).observe(jax.random.key(0))
    u, v = bn["u"].value, bn["v"].value
    np.testing.assert_allclose(bn["r_test"].value, jnp.sum(u[test_user] * v[test_item], -1) + 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="together"):
        pmf.build_pmf(user, item, 3, 4, 2, test_user=test_user)


def test_build_pmf_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D of one length"):
        pmf.build_pmf(jnp.zeros(3, int), jnp.zeros(4, int), 2, 2, 1)
    with pytest.raises(ValueError, match="positive"):
        pmf.build_pmf(jnp.zeros(3, int), jnp.zeros(3, int), 2, 2, 1, noise_std=0.0)


def test_map_fit_reaches_the_closed_form_mode():
    # A Gaussian log joint with mode (3, -1) per row: 300 Adam steps at rate 0.1 from ~0 settle
    # within ~1e-3 of it (Adam's steps shrink with the gradient near the mode); 1e-2 bounds it.
    mode = {"u": jnp.full((4, 2), 3.0), "v": jnp.full((5, 2), -1.0)}
    log_joint_fn = lambda p: -0.5 * sum(jnp.sum((p[k] - mode[k]) ** 2) for k in p)
    point = pmf.map_fit(jax.random.key(0), log_joint_fn, {"u": (4, 2), "v": (5, 2)}, n_steps=300,
                        learning_rate=0.1)
    for name in mode:
        np.testing.assert_allclose(point[name], mode[name], atol=1e-2)
    assert point["u"].shape == (4, 2) and point["v"].shape == (5, 2)


def test_hmc_recovers_held_out_entries_of_a_low_rank_matrix():
    # 150 warmup iterations: Stan's full windowed schedule (75 + 25 + 50); below it the stages shrink
    # and the step size gets too few iterations to re-tune after the mass update (the sampler warns),
    # which leaves some chains with a step size far too large for this posterior.
    train, test = _synthetic(jax.random.key(1))
    result = pmf.fit(jax.random.key(2), train, test, rank=2, prior_std=1.0, noise_std=0.3, n_chains=2,
                     n_samples=100, n_warmup=150, map_steps=200)
    predictions = np.asarray(result.predictions)
    assert predictions.shape == (2, 100, len(test.rating)) and np.isfinite(predictions).all()
    hmc_rmse = float(np.sqrt(np.mean((predictions.mean((0, 1)) - test.rating) ** 2)))
    baseline_rmse = float(np.sqrt(np.mean((train.rating.mean() - test.rating) ** 2)))
    # Basis: held-out entries have variance rank * 1 + 0.3^2 = 2.09 around 0, so the global-mean
    # predictor's RMSE is about 1.45. With ~20 observed entries per row and column for 2 factors,
    # the posterior mean's error is the noise (0.3) plus an estimation error of roughly
    # 0.3 * sqrt(2 * 2 / 20) ~ 0.13 per factor product, i.e. RMSE ~ 0.35-0.5. The bound 0.5 *
    # baseline (~0.72) sits far from both; a sampler that did not move off a bad point or diverged
    # would fail it. Seeds are fixed; the outcome does not hinge on them at this margin.
    assert hmc_rmse < 0.5 * baseline_rmse, (hmc_rmse, baseline_rmse)
    assert 0.3 < float(np.mean(result.info.acceptance_rate)) <= 1.0


def test_split_ratings_partitions_the_ratings():
    ratings = pmf.Ratings(np.arange(20, dtype=np.int32) % 4, np.arange(20, dtype=np.int32) % 5,
                          np.arange(20, dtype=np.float32), 4, 5)
    train, test = pmf.split_ratings(ratings, seed=3, test_fraction=0.1)
    assert len(test.rating) == 2 and len(train.rating) == 18
    assert sorted(np.concatenate([train.rating, test.rating]).tolist()) == list(range(20))
    assert pmf.rmse([0.0, 6.0], [0.5, 5.0]) == 0.0  # predictions are clipped to 0.5-5 stars
