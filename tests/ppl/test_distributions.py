"""Every node helper's log-density against scipy.stats, sample shapes and `group_ndims`, and the
concrete family (which scipy lacks) checked by normalisation and by its sampling properties.

Exact comparisons use float32 tolerances (rtol 1e-5, atol 1e-4: a few ulps of log-densities of
magnitude <= 100, plus lgamma's float32 error); they cannot fail by chance. Statistical checks use
4 Monte Carlo standard errors (two-sided normal tail: false-failure rate 6e-5 per assertion).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

import ppl

BATCH = (2, 3)
RNG = np.random.default_rng(20240607)


def _uniform(low, high, shape=BATCH):
    return RNG.uniform(low, high, size=shape).astype(np.float32)


def _softmax(logits):
    return sp.softmax(logits.astype(np.float64), axis=-1)


def _per_batch(fn, *arrays):
    """Applies a scipy function that does not broadcast over batches, element by batch element."""
    out = np.empty(BATCH)
    for index in np.ndindex(*BATCH):
        out[index] = fn(*(a[index] for a in arrays))
    return out


def _tril(k):
    """A [*BATCH, k, k] random lower-triangular matrix with a positive diagonal."""
    lower = np.tril(RNG.normal(size=BATCH + (k, k)), -1)
    return (lower + np.eye(k) * RNG.uniform(0.5, 1.5, size=BATCH + (k, 1))).astype(np.float32)


def _cases():
    mean, std, x = _uniform(-2, 2), _uniform(0.3, 2), _uniform(-3, 3)
    pos = _uniform(0.1, 4)
    logits = _uniform(-2, 2)
    logits4 = RNG.normal(size=BATCH + (4,)).astype(np.float32)
    counts = RNG.integers(0, 5, size=BATCH + (4,))
    alpha, beta = _uniform(0.5, 3), _uniform(0.5, 3)
    simplex = RNG.dirichlet(np.ones(4), size=BATCH).astype(np.float32)
    alpha4 = _uniform(0.5, 3, BATCH + (4,))
    index = RNG.integers(0, 4, size=BATCH)
    onehot = np.eye(4, dtype=np.int32)[index]
    cov_tril = _tril(3)
    mvn_mean, mvn_x = RNG.normal(size=BATCH + (3,)), RNG.normal(size=BATCH + (3,))
    u_tril, v_tril = _tril(2), _tril(3)
    mat_mean, mat_x = RNG.normal(size=BATCH + (2, 3)), RNG.normal(size=BATCH + (2, 3))
    n = 7
    binomial_x = RNG.integers(0, n + 1, size=BATCH)
    p4 = _softmax(logits4)
    return [
        ("normal_std", "normal", dict(mean=mean, std=std), x, st.norm.logpdf(x, mean, std)),
        ("normal_logstd", "normal", dict(mean=mean, logstd=np.log(std)), x, st.norm.logpdf(x, mean, std)),
        # |N(mean, std)| is scipy's foldnorm with c = |mean| / std and scale std (any sign of mean)
        ("fold_normal", "fold_normal", dict(mean=mean, std=std), pos,
         st.foldnorm.logpdf(pos, np.abs(mean) / std, scale=std)),
        ("bernoulli_logits", "bernoulli", dict(logits=logits), index % 2,
         st.bernoulli.logpmf(index % 2, sp.expit(logits))),
        ("bernoulli_probs", "bernoulli", dict(probs=sp.expit(logits)), index % 2,
         st.bernoulli.logpmf(index % 2, sp.expit(logits))),
        ("categorical", "categorical", dict(logits=logits4), index,
         _per_batch(lambda v, p: st.multinomial.logpmf(v, 1, p), onehot, p4)),
        ("categorical_probs", "categorical", dict(probs=p4.astype(np.float32)), index,
         _per_batch(lambda v, p: st.multinomial.logpmf(v, 1, p), onehot, p4)),
        ("onehot_categorical", "onehot_categorical", dict(logits=logits4), onehot,
         _per_batch(lambda v, p: st.multinomial.logpmf(v, 1, p), onehot, p4)),
        ("uniform", "uniform", dict(minval=mean - 4, maxval=mean + std + 3), x,
         st.uniform.logpdf(x, mean - 4, std + 7)),
        ("gamma", "gamma", dict(alpha=alpha, beta=beta), pos, st.gamma.logpdf(pos, alpha, scale=1 / beta)),
        ("beta", "beta", dict(alpha=alpha, beta=beta), pos / 4.2, st.beta.logpdf(pos / 4.2, alpha, beta)),
        ("poisson", "poisson", dict(rate=pos), index, st.poisson.logpmf(index, pos)),
        ("binomial", "binomial", dict(logits=logits, n_experiments=n), binomial_x,
         st.binom.logpmf(binomial_x, n, sp.expit(logits))),
        ("binomial_probs", "binomial", dict(probs=sp.expit(logits), n_experiments=n), binomial_x,
         st.binom.logpmf(binomial_x, n, sp.expit(logits))),
        ("multinomial", "multinomial", dict(logits=logits4, n_experiments=counts.sum(-1)), counts,
         _per_batch(lambda v, p: st.multinomial.logpmf(v, v.sum(), p), counts, p4)),
        # ZhuSuan's unnormalised multinomial drops the multinomial coefficient n! / prod(x_k!)
        ("unnormalized_multinomial", "unnormalized_multinomial", dict(logits=logits4), counts,
         _per_batch(lambda v, p: st.multinomial.logpmf(v, v.sum(), p), counts, p4)
         - sp.gammaln(counts.sum(-1) + 1) + sp.gammaln(counts + 1).sum(-1)),
        ("dirichlet", "dirichlet", dict(alpha=alpha4), simplex,
         _per_batch(st.dirichlet.logpdf, simplex, alpha4)),
        ("inverse_gamma", "inverse_gamma", dict(alpha=alpha, beta=beta), pos,
         st.invgamma.logpdf(pos, alpha, scale=beta)),
        ("laplace", "laplace", dict(loc=mean, scale=std), x, st.laplace.logpdf(x, mean, std)),
        ("student_t", "student_t", dict(df=alpha, loc=mean, scale=std), x, st.t.logpdf(x, alpha, mean, std)),
        # a half-t is twice the t density on [0, inf)
        ("half_student_t", "half_student_t", dict(df=alpha, scale=std), pos,
         np.log(2.0) + st.t.logpdf(pos, alpha, scale=std)),
        ("half_normal", "half_normal", dict(scale=std), pos, st.halfnorm.logpdf(pos, scale=std)),
        ("half_cauchy", "half_cauchy", dict(scale=std), pos, st.halfcauchy.logpdf(pos, scale=std)),
        ("multivariate_normal_cholesky", "multivariate_normal_cholesky",
         dict(mean=mvn_mean, cov_tril=cov_tril), mvn_x,
         _per_batch(lambda v, m, t: st.multivariate_normal.logpdf(v, m, t @ t.T), mvn_x, mvn_mean, cov_tril)),
        ("matrix_variate_normal_cholesky", "matrix_variate_normal_cholesky",
         dict(mean=mat_mean, u_tril=u_tril, v_tril=v_tril), mat_x,
         _per_batch(lambda v, m, u, w: st.matrix_normal.logpdf(v, m, rowcov=u @ u.T, colcov=w @ w.T),
                    mat_x, mat_mean, u_tril, v_tril)),
    ]


CASES = _cases()


@pytest.mark.parametrize("method, kwargs, value, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_log_prob_matches_scipy(method, kwargs, value, expected):
    @jax.jit
    def log_probs(value, kwargs):
        bn = ppl.BayesianNet(observed={"v": value, "w": value})
        getattr(bn, method)("v", **kwargs)
        getattr(bn, method)("w", **kwargs, group_ndims=2)
        return bn["v"].log_prob, bn["w"].log_prob

    elementwise, grouped = log_probs(value, kwargs)
    assert elementwise.shape == BATCH and grouped.shape == ()
    np.testing.assert_allclose(elementwise, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grouped, np.sum(expected), rtol=1e-5, atol=1e-4)


SAMPLE_EVENT_SHAPES = {case[1]: case[3].shape[len(BATCH):] for case in CASES}
SAMPLE_EVENT_SHAPES.update({"bin_concrete": (), "exp_concrete": (4,), "concrete": (4,)})
SAMPLE_KWARGS = {case[1]: case[2] for case in CASES}
SAMPLE_KWARGS.update({name: dict(temperature=0.5, logits=RNG.normal(size=BATCH + event).astype(np.float32))
                      for name, event in [("bin_concrete", ()), ("exp_concrete", (4,)), ("concrete", (4,))]})
SAMPLE_KWARGS["multinomial"] = dict(SAMPLE_KWARGS["multinomial"], n_experiments=5)


def test_every_helper_is_covered():
    assert set(SAMPLE_KWARGS) == set(ppl.nodes.NODE_TABLE)


@pytest.mark.parametrize("method", sorted(set(ppl.nodes.NODE_TABLE) - {"unnormalized_multinomial"}))
@pytest.mark.parametrize("n_samples", [None, 5])
def test_sample_shapes(key, method, n_samples):
    """Value [n_samples, *batch, *event]; log_prob with group_ndims=1 drops the last batch axis.
    Traced with eval_shape: shapes are static, so nothing needs compiling."""

    def build(key):
        bn = ppl.BayesianNet(key=key)
        getattr(bn, method)("v", **SAMPLE_KWARGS[method], group_ndims=1, n_samples=n_samples)
        return bn["v"].value, bn["v"].log_prob

    value, log_prob = jax.eval_shape(build, key)
    leading = () if n_samples is None else (n_samples,)
    assert value.shape == leading + BATCH + SAMPLE_EVENT_SHAPES[method]
    assert log_prob.shape == leading + BATCH[:1]


# All the samples the statistical tests below use, drawn in one jitted net (one compilation): each
# node draws with its own key node_key(key, name), so the draws are independent.
SAMPLED = {
    # name: (helper, args, n_samples)
    "onehot": ("onehot_categorical", (np.array([0.5, -1., 0., 1.2], np.float32),), 20000),
    "bin_concrete": ("bin_concrete", (0.7, np.float32(0.6)), 20000),
    "concrete": ("concrete", (0.7, np.array([0.6, 0.], np.float32)), 20000),
    "exp_concrete": ("exp_concrete", (0.7, np.array([0.6, 0.], np.float32)), 20000),
    "concrete_cold": ("concrete", (0.02, np.array([1., 0., -0.5], np.float32)), 10000),
}


@pytest.fixture(scope="module")
def samples():
    @jax.jit
    def draw(key, args):
        bn = ppl.BayesianNet(key=key)
        return {name: getattr(bn, method)(name, *args[name], n_samples=n)
                for name, (method, _, n) in SAMPLED.items()}

    values = draw(jax.random.key(0), {name: spec[1] for name, spec in SAMPLED.items()})
    return {name: np.asarray(value) for name, value in values.items()}


def test_onehot_categorical_samples(samples):
    """One-hot int32 vectors with category frequencies softmax(logits) (4-sigma binomial bound)."""
    value, n = samples["onehot"], SAMPLED["onehot"][2]
    assert value.shape == (n, 4) and value.dtype == np.int32
    np.testing.assert_array_equal(np.sum(value, -1), np.ones(n))
    probs = _softmax(SAMPLED["onehot"][1][0])
    np.testing.assert_array_less(np.abs(np.mean(value, 0) - probs), 4 * np.sqrt(probs * (1 - probs) / n))


# ---------------------------------------------------------------- the concrete family

def _trapezoid(y, x):
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


@pytest.fixture(scope="module")
def concrete_densities():
    """Densities of the three concrete helpers (2 categories / binary) with the parameters of the
    SAMPLED entries of the same name, all as densities of one real coordinate u on a grid, so each
    integrates to 1 and E[f(u)] is a 1-D quadrature.

    - bin_concrete: x = sigmoid(u), density of u is p(x) x (1 - x).
    - concrete, 2 categories: x = softmax([u, 0]), density of u is p(x) x_1 x_2 (the density of a
      point of the simplex is w.r.t. Lebesgue measure on its first K - 1 coordinates).
    - exp_concrete, 2 categories: y = log_softmax([u, 0]); Maddison et al.'s log-density is w.r.t.
      the differences y_k - y_K, so it is already the density of u.
    Grid: u in [-35, 35], step 0.005 (u is (logit + Logistic) / temperature, so the mass beyond is
    about 2 exp(-(35 * 0.7 - 0.6)) = 8e-11; sigmoid(35) is still below 1 in float64). Float64, so
    the trapezoid integral of these smooth densities is accurate to ~1e-9.
    """
    u = np.linspace(-35, 35, 14001)

    def log_densities(u):
        pairs = jnp.stack([u, jnp.zeros_like(u)], -1)
        x = jax.nn.sigmoid(u)
        bn = ppl.BayesianNet(observed={"bin_concrete": x, "concrete": jax.nn.softmax(pairs, -1),
                                       "exp_concrete": jax.nn.log_softmax(pairs, -1)})
        for name in ("bin_concrete", "concrete", "exp_concrete"):
            method, args, _ = SAMPLED[name]
            getattr(bn, method)(name, *args)
        return {"bin_concrete": bn["bin_concrete"].log_prob + jnp.log(x) + jnp.log1p(-x),
                "concrete": bn["concrete"].log_prob + jnp.sum(jax.nn.log_softmax(pairs, -1), -1),
                "exp_concrete": bn["exp_concrete"].log_prob}

    with jax.enable_x64(True):
        log_density = jax.jit(log_densities)(jnp.asarray(u))
        densities = {name: np.exp(np.asarray(value)) for name, value in log_density.items()}
    return u, densities


@pytest.mark.parametrize("method", ["bin_concrete", "concrete", "exp_concrete"])
def test_concrete_density_integrates_to_one(concrete_densities, method):
    u, densities = concrete_densities
    assert densities[method].dtype == np.float64
    assert np.all(np.isfinite(densities[method]))
    np.testing.assert_allclose(_trapezoid(densities[method], u), 1.0, atol=1e-6)


def test_concrete_samples_match_their_density(samples, concrete_densities):
    """The sampler and the density describe the same law: the sample mean of sigmoid(u) agrees with
    the quadrature mean within 4 standard errors. In this 2-category case all three helpers give the
    same law of u = (logit + Logistic noise) / temperature, whose mean is logit / temperature."""
    u, densities = concrete_densities
    n = SAMPLED["concrete"][2]
    sigmoid_u = {"bin_concrete": samples["bin_concrete"], "concrete": samples["concrete"][:, 0],
                 "exp_concrete": np.exp(samples["exp_concrete"][:, 0])}
    for method, x in sigmoid_u.items():
        x = np.asarray(x, np.float64)
        exact = _trapezoid(sp.expit(u) * densities[method], u)
        assert abs(x.mean() - exact) < 4 * x.std() / np.sqrt(n), method
        np.testing.assert_allclose(_trapezoid(u * densities[method], u), 0.6 / 0.7, atol=1e-6)


def test_concrete_samples_on_simplex_and_exp_concrete_normalised(samples):
    for name in ("concrete", "concrete_cold"):
        x = samples[name]
        assert np.all(x >= 0)
        np.testing.assert_allclose(np.sum(x, -1), 1., atol=1e-5)
    np.testing.assert_allclose(sp.logsumexp(samples["exp_concrete"], -1), 0., atol=1e-5)


def test_low_temperature_concrete_is_nearly_one_hot_with_softmax_frequencies(samples):
    """At temperature 0.02 the gap between the two largest Gumbel-perturbed logits is below
    0.02 * log(9) = 0.044 with probability about 0.044 (the top spacing is close to Exp(1)), so the
    largest component exceeds 0.9 in ~96% of samples; we require 90%, 30 standard errors away.
    argmax(sample) ~ softmax(logits) at every temperature (Maddison et al., 2017, Prop. 1);
    frequencies checked within 4 binomial standard errors."""
    x, (_, (_, logits), n) = samples["concrete_cold"], SAMPLED["concrete_cold"]
    assert np.mean(np.max(x, -1) > 0.9) > 0.9
    frequencies = np.bincount(np.argmax(x, -1), minlength=3) / n
    probs = _softmax(logits)
    np.testing.assert_array_less(np.abs(frequencies - probs), 4 * np.sqrt(probs * (1 - probs) / n))


def test_bin_concrete_exceeds_half_with_sigmoid_probability(samples):
    """P(x > 1/2) = sigmoid(logits) at any temperature; 4 binomial standard errors."""
    x, (_, (_, logit), n) = samples["bin_concrete"], SAMPLED["bin_concrete"]
    prob = sp.expit(np.float64(logit))
    assert abs(np.mean(x > 0.5) - prob) < 4 * np.sqrt(prob * (1 - prob) / n)


def test_concrete_probs_equal_the_matching_logits():
    """`probs=p` means logits = log-odds of p for the binary concrete, log p for the categorical ones."""
    probs = np.array([0.2, 0.5, 0.3], np.float32)
    value = np.array([0.1, 0.6, 0.3], np.float32)

    @jax.jit
    def body(value):
        bn = ppl.BayesianNet(observed={"b_p": value[0], "b_l": value[0], "c_p": value, "c_l": value,
                                       "e_p": jnp.log(value), "e_l": jnp.log(value)})
        bn.bin_concrete("b_p", 0.4, probs=probs[0])
        bn.bin_concrete("b_l", 0.4, logits=sp.logit(probs[0]))
        bn.concrete("c_p", 0.4, probs=probs)
        bn.concrete("c_l", 0.4, logits=np.log(probs))
        bn.exp_concrete("e_p", 0.4, probs=probs)
        bn.exp_concrete("e_l", 0.4, logits=np.log(probs))
        return {name: bn[name].log_prob for name in bn}

    log_prob = body(value)
    for name in ("b", "c", "e"):
        np.testing.assert_allclose(log_prob[name + "_p"], log_prob[name + "_l"], rtol=1e-5)
