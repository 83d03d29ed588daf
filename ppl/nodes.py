"""The table of ZhuSuan node helpers: ZhuSuan's parameter names on top, numpyro underneath.

Each entry maps a helper name (`bn.normal`, `bn.gamma`, ...) to a small constructor that takes
ZhuSuan's parameters and returns a `numpyro.distributions.Distribution`. `ppl.BayesianNet`
generates one method per entry; nothing else knows about individual distributions.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpyro.distributions as dist

from ppl.numpyro_extras import (
    Concrete,
    ExpConcrete,
    HalfStudentT,
    OneHotCategorical,
    UnnormalizedMultinomial,
    logits_from,
)

__all__ = ["NodeSpec", "NODE_TABLE", "ZHUSUAN_ALIASES"]


class NodeSpec(NamedTuple):
    """One DSL helper: its constructor and the ZhuSuan class it mirrors."""

    make_distribution: Callable[..., dist.Distribution]
    zhusuan_name: str


def _scale(std, logstd):
    if (std is None) == (logstd is None):
        given = "both" if std is not None else "neither"
        raise ValueError(f"exactly one of `std` or `logstd` must be given, got {given}")
    return jnp.asarray(std) if std is not None else jnp.exp(jnp.asarray(logstd))


def normal(mean=0., *, std=None, logstd=None):
    """Normal(mean, std): `std` or `logstd` (exactly one), broadcast against `mean`."""
    return dist.Normal(mean, _scale(std, logstd))


def fold_normal(mean=0., *, std=None, logstd=None):
    """`abs(X)` for X ~ Normal(mean, std): support [0, inf), density N(x) + N(-x)."""
    return dist.FoldedDistribution(dist.Normal(mean, _scale(std, logstd)))


def bernoulli(logits=None, *, probs=None):
    """Bernoulli with `logits` or `probs` (exactly one); values in {0, 1}."""
    if probs is not None and logits is None:
        return dist.BernoulliProbs(probs)
    return dist.BernoulliLogits(logits_from(logits, probs))


def categorical(logits=None, *, probs=None):
    """Categorical over the last axis of `logits` (or `probs`); values are int indices."""
    return dist.CategoricalLogits(logits_from(logits, probs))


def onehot_categorical(logits=None, *, probs=None):
    """One-hot categorical over the last axis; values are int32 one-hot vectors."""
    return OneHotCategorical(logits_from(logits, probs))


def uniform(minval=0., maxval=1.):
    """Uniform on [minval, maxval)."""
    return dist.Uniform(minval, maxval)


def gamma(alpha, beta):
    """Gamma with shape `alpha` and rate `beta` (mean alpha / beta)."""
    return dist.Gamma(alpha, beta)


def beta(alpha, beta):
    """Beta(alpha, beta) on (0, 1) (mean alpha / (alpha + beta))."""
    return dist.Beta(alpha, beta)


def poisson(rate):
    """Poisson with mean `rate`."""
    return dist.Poisson(rate)


def binomial(logits=None, n_experiments=None, *, probs=None):
    """Binomial with `n_experiments` trials and success log-odds `logits` (or `probs`)."""
    _require("n_experiments", n_experiments)
    if probs is not None and logits is None:
        return dist.BinomialProbs(probs, total_count=n_experiments)
    return dist.BinomialLogits(logits_from(logits, probs), total_count=n_experiments)


def multinomial(logits=None, n_experiments=None, *, probs=None, normalize_logits=True):
    """Multinomial counts over the last axis, `n_experiments` trials in all."""
    del normalize_logits  # numpyro always normalises; kept for ZhuSuan compatibility
    _require("n_experiments", n_experiments)
    return dist.MultinomialLogits(logits_from(logits, probs), total_count=n_experiments)


def unnormalized_multinomial(logits=None, *, probs=None, normalize_logits=True):
    """Multinomial likelihood without the multinomial coefficient; observe-only."""
    del normalize_logits
    return UnnormalizedMultinomial(logits_from(logits, probs))


def dirichlet(alpha):
    """Dirichlet with concentration `alpha` over the last axis."""
    return dist.Dirichlet(alpha)


def inverse_gamma(alpha, beta):
    """Inverse-gamma with shape `alpha` and scale `beta`: density ~ x^(-alpha-1) exp(-beta / x)."""
    return dist.InverseGamma(alpha, beta)


def laplace(loc, scale):
    """Laplace(loc, scale): density `exp(-|x - loc| / scale) / (2 scale)`."""
    return dist.Laplace(loc, scale)


def bin_concrete(temperature, logits=None, *, probs=None):
    """Binary Concrete relaxation of a Bernoulli (Maddison et al., 2017), values in (0, 1); `logits`
    are log-odds, or `probs` the probabilities of 1."""
    return dist.RelaxedBernoulliLogits(temperature, _log_odds(logits, probs))


def exp_concrete(temperature, logits=None, *, probs=None):
    """The log of a Concrete sample (see `ppl.numpyro_extras.ExpConcrete`)."""
    return ExpConcrete(temperature, logits_from(logits, probs))


def concrete(temperature, logits=None, *, probs=None):
    """Concrete / Gumbel-softmax relaxation of a one-hot categorical, values on the simplex."""
    return Concrete(temperature, logits_from(logits, probs))


def student_t(df, loc=0., scale=1.):
    """Student-t with `df` degrees of freedom, location `loc` and scale `scale`."""
    return dist.StudentT(df, loc, scale)


def half_student_t(df, scale=1.):
    """`abs(X)` for X ~ StudentT(df, 0, scale), on [0, inf) (see `ppl.numpyro_extras.HalfStudentT`)."""
    return HalfStudentT(df, scale)


def half_normal(scale=1.):
    """`abs(X)` for X ~ Normal(0, scale), on [0, inf)."""
    return dist.HalfNormal(scale)


def half_cauchy(scale=1.):
    """`abs(X)` for X ~ Cauchy(0, scale), on [0, inf)."""
    return dist.HalfCauchy(scale)


def multivariate_normal_cholesky(mean, cov_tril):
    """Multivariate normal with covariance `cov_tril @ cov_tril.T`; event shape `[d]`."""
    return dist.MultivariateNormal(mean, scale_tril=cov_tril)


def matrix_variate_normal_cholesky(mean, u_tril, v_tril):
    """Matrix normal MN(mean, U, V) with row covariance U = u_tril u_tril^T ([n, n]) and column
    covariance V = v_tril v_tril^T ([p, p]); event shape `[n, p]`."""
    return dist.MatrixNormal(mean, u_tril, v_tril)


def _log_odds(logits, probs):
    """Log-odds of a binary variable from `logits` or `probs` (log(probs) would be wrong here)."""
    if probs is not None and logits is None:
        probs = jnp.asarray(probs)
        return jnp.log(probs) - jnp.log1p(-probs)
    return logits_from(logits, probs)


def _require(name, value):
    if value is None:
        raise ValueError(f"`{name}` must be given")


NODE_TABLE: dict[str, NodeSpec] = {
    "normal": NodeSpec(normal, "Normal"),
    "fold_normal": NodeSpec(fold_normal, "FoldNormal"),
    "bernoulli": NodeSpec(bernoulli, "Bernoulli"),
    "categorical": NodeSpec(categorical, "Categorical"),
    "onehot_categorical": NodeSpec(onehot_categorical, "OnehotCategorical"),
    "uniform": NodeSpec(uniform, "Uniform"),
    "gamma": NodeSpec(gamma, "Gamma"),
    "beta": NodeSpec(beta, "Beta"),
    "poisson": NodeSpec(poisson, "Poisson"),
    "binomial": NodeSpec(binomial, "Binomial"),
    "multinomial": NodeSpec(multinomial, "Multinomial"),
    "unnormalized_multinomial": NodeSpec(unnormalized_multinomial, "UnnormalizedMultinomial"),
    "dirichlet": NodeSpec(dirichlet, "Dirichlet"),
    "inverse_gamma": NodeSpec(inverse_gamma, "InverseGamma"),
    "laplace": NodeSpec(laplace, "Laplace"),
    "bin_concrete": NodeSpec(bin_concrete, "BinConcrete"),
    "exp_concrete": NodeSpec(exp_concrete, "ExpConcrete"),
    "concrete": NodeSpec(concrete, "Concrete"),
    "student_t": NodeSpec(student_t, "StudentT"),
    "half_student_t": NodeSpec(half_student_t, "HalfStudentT"),
    "half_normal": NodeSpec(half_normal, "HalfNormal"),
    "half_cauchy": NodeSpec(half_cauchy, "HalfCauchy"),
    "multivariate_normal_cholesky": NodeSpec(multivariate_normal_cholesky, "MultivariateNormalCholesky"),
    "matrix_variate_normal_cholesky": NodeSpec(matrix_variate_normal_cholesky,
                                               "MatrixVariateNormalCholesky"),
}

# ZhuSuan's alternative names: helper name -> (the table entry it stands for, ZhuSuan's class name)
ZHUSUAN_ALIASES: dict[str, tuple[str, str]] = {
    "discrete": ("categorical", "Discrete"),
    "onehot_discrete": ("onehot_categorical", "OnehotDiscrete"),
    "bin_gumbel_softmax": ("bin_concrete", "BinGumbelSoftmax"),
    "exp_gumbel_softmax": ("exp_concrete", "ExpGumbelSoftmax"),
    "gumbel_softmax": ("concrete", "GumbelSoftmax"),
}
