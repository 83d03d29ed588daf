"""ZhuSuan's modelling surface: node records as arrays, `query`/`outputs`/`local_log_prob`,
`.tensor`/`.dist`/`cond_log_p`, `dtype=` on discrete helpers, the distribution classes by ZhuSuan's
names, `meta_bayesian_net(scope=, reuse_variables=)`, and the `log_joint_fn` vocabulary with
ZhuSuan's `model.log_joint = fn`. Each alias is checked to equal its counterpart's result."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from tests.ppl.test_distributions import BATCH, CASES, SAMPLE_KWARGS


@ppl.meta_bayesian_net
def regression(x):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=1., group_ndims=1)
    bn.normal("s", 0., std=1.)
    y_mean = bn.deterministic("y_mean", x @ w)
    bn.normal("y", y_mean, std=0.5, group_ndims=1)
    return bn


X = np.arange(6., dtype=np.float32).reshape(3, 2) / 6


@pytest.fixture(scope="module")
def bn():
    return regression(X).observe(jax.random.key(0))


def test_nodes_are_arrays(bn):
    w, y_mean, s = bn["w"], bn["y_mean"], bn["s"]
    np.testing.assert_array_equal(w * 2 + 1, w.value * 2 + 1)
    np.testing.assert_array_equal(y_mean * 2, y_mean.value * 2)              # a deterministic node
    np.testing.assert_array_equal(1 - y_mean / 2, 1 - y_mean.value / 2)
    np.testing.assert_array_equal(X @ w, X @ w.value)                         # reflected matmul
    np.testing.assert_array_equal(w ** 2 - abs(-w), w.value ** 2 - abs(w.value))
    np.testing.assert_array_equal(w > 0, w.value > 0)
    assert float(jnp.mean(w)) == float(jnp.mean(w.value))
    np.testing.assert_array_equal(jnp.exp(w), jnp.exp(w.value))
    np.testing.assert_array_equal(jax.nn.softmax(y_mean), jax.nn.softmax(y_mean.value))
    assert float(s) == float(s.value) and w[1] == w.value[1] and list(w) == list(w.value)
    np.testing.assert_array_equal(np.asarray(w), np.asarray(w.value))
    assert w.shape == (2,) and w.ndim == 1 and w.size == 2 and w.dtype == jnp.float32
    assert w.tensor is w.value and y_mean.tensor is y_mean.value
    with pytest.raises(TypeError):
        float(w)                                    # as for a jax.Array of size 2


def test_nodes_inside_jit_and_as_pytrees(bn):
    """A record passed into or out of jit is its value (it flattens to the one array)."""
    doubled = jax.jit(lambda node: node * 2)(bn["w"])
    assert isinstance(doubled, jax.Array)
    np.testing.assert_array_equal(doubled, bn["w"].value * 2)
    assert jax.tree_util.tree_leaves(bn["y_mean"])[0] is bn["y_mean"].value

    @jax.jit
    def mean_of_samples(key):
        net = regression(X).observe(key)
        return jnp.mean(net["w"]), jnp.sum(net["y_mean"] * 2)

    mean, total = mean_of_samples(jax.random.key(0))
    np.testing.assert_allclose(mean, jnp.mean(bn["w"].value), rtol=1e-6)
    np.testing.assert_allclose(total, jnp.sum(bn["y_mean"].value * 2), rtol=1e-6)


def test_records_keep_identity_equality(bn):
    assert bn["w"] == bn["w"] and bn["w"] != bn["s"]
    assert {bn["w"]: 1}[bn["w"]] == 1


def test_query_outputs_local_log_prob(bn):
    (w, log_w), (y, log_y) = bn.query(["w", "y"], outputs=True, local_log_prob=True)
    assert w is bn["w"].value and y is bn["y"].value
    assert log_w is bn.cond_log_prob("w") and log_y is bn.cond_log_prob("y")
    assert bn.query("w", outputs=True) == (bn["w"].value,)
    assert bn.query("y", local_log_prob=True) == (bn["y"].log_prob,)
    assert bn.outputs("y_mean") is bn["y_mean"].value
    assert bn.outputs(["w", "y_mean"])[1] is bn["y_mean"].value
    assert bn.local_log_prob(["w", "y"]) == bn.cond_log_prob(["w", "y"])
    assert bn["w"].cond_log_p is bn["w"].log_prob
    with pytest.raises(ValueError, match="select outputs=True and/or local_log_prob=True"):
        bn.query("w")
    with pytest.raises(TypeError, match="node 'y_mean' is deterministic"):
        bn.query(["y_mean"], local_log_prob=True)


def test_dist_is_the_zhusuan_distribution(bn):
    zs_dist = bn["w"].dist
    assert isinstance(zs_dist, ppl.distributions.Distribution)
    assert zs_dist.group_ndims == 1 and zs_dist.distribution is bn["w"].distribution
    np.testing.assert_array_equal(zs_dist.log_prob(bn["w"].value), bn["w"].log_prob)
    assert zs_dist.batch_shape == (2,) and zs_dist.value_shape == () and zs_dist.is_continuous


def test_dtype_casts_discrete_samples(key):
    bn = ppl.BayesianNet(key=key)
    as_float = bn.bernoulli("b", logits=jnp.zeros(5), dtype=jnp.float32)
    as_int = bn.stochastic("b_int", ppl.distributions.Bernoulli(jnp.zeros(5)))
    c = bn.categorical("c", jnp.log(jnp.array([0.2, 0.3, 0.5])), dtype=jnp.float32, n_samples=4)
    assert as_float.dtype == jnp.float32 and as_int.dtype == jnp.int32 and c.dtype == jnp.float32
    reference = ppl.BayesianNet(key=key)
    reference.bernoulli("b", logits=jnp.zeros(5))
    reference.categorical("c", jnp.log(jnp.array([0.2, 0.3, 0.5])), n_samples=4)
    np.testing.assert_array_equal(as_float, reference["b"].value)           # same draws, cast
    np.testing.assert_array_equal(bn["c"].log_prob, reference["c"].log_prob)
    with pytest.raises(TypeError, match="node 'z': dtype= applies to discrete distributions"):
        bn.normal("z", 0., std=1., dtype=jnp.float32)


@pytest.mark.parametrize("method, kwargs, value", [c[1:4] for c in CASES], ids=[c[0] for c in CASES])
def test_distribution_classes_equal_the_node_helpers(method, kwargs, value):
    """`ppl.distributions.<ZhuSuan name>(..., group_ndims=1).log_prob` equals the node helper's
    log_prob with group_ndims=1; `bn.stochastic(name, zs_dist)` builds the same node."""
    @jax.jit
    def log_probs(value, kwargs):
        zs_dist = _zhusuan_class(method)(**kwargs, group_ndims=1)
        bn = ppl.BayesianNet(observed={"v": value, "u": value})
        getattr(bn, method)("v", **kwargs, group_ndims=1)
        bn.stochastic("u", zs_dist)
        assert bn["u"].group_ndims == 1 and bn["u"].dist is zs_dist
        return zs_dist.log_prob(value), bn["u"].log_prob, bn["v"].log_prob

    from_class, from_stochastic, from_helper = log_probs(value, kwargs)
    assert from_class.shape == BATCH[:1]
    np.testing.assert_allclose(from_class, from_helper, rtol=1e-6)
    np.testing.assert_allclose(from_stochastic, from_helper, rtol=1e-6)


SAMPLED_METHODS = sorted(set(ppl.nodes.NODE_TABLE) - {"unnormalized_multinomial"})


def _zhusuan_class(method):
    return getattr(ppl.distributions, ppl.nodes.NODE_TABLE[method].zhusuan_name)


@pytest.mark.parametrize("method", SAMPLED_METHODS)
def test_distribution_class_samples_as_zhusuan(method, key):
    """`sample(key, n_samples)`: None adds no axis, an int a leading one (traced for shapes only)."""
    zs_dist = _zhusuan_class(method)(**SAMPLE_KWARGS[method], group_ndims=1)
    shape = zs_dist.batch_shape + zs_dist.value_shape
    one, five = jax.eval_shape(lambda k: (zs_dist.sample(k), zs_dist.sample(k, 5)), key)
    assert one.shape == shape and five.shape == (5, *shape)


@pytest.mark.parametrize("method", ["normal", "bernoulli", "onehot_categorical", "concrete", "laplace"])
def test_distribution_class_draws_equal_the_helper_draws(method, key):
    """With the node's key, a class draws what the node helper draws (the samplers with
    rejection loops are left out: they are slow to run eagerly and share this code path)."""
    zs_dist = _zhusuan_class(method)(**SAMPLE_KWARGS[method])
    bn = ppl.BayesianNet(key=key)
    from_helper = getattr(bn, method)("v", **SAMPLE_KWARGS[method], n_samples=3)
    np.testing.assert_array_equal(zs_dist.sample(ppl.node_key(key, "v"), 3), from_helper)


def test_zhusuan_alternative_names(key):
    assert ppl.distributions.Discrete is ppl.distributions.Categorical
    assert ppl.distributions.GumbelSoftmax is ppl.distributions.Concrete
    assert ppl.distributions.OnehotDiscrete is ppl.distributions.OnehotCategorical
    assert ppl.BayesianNet.gumbel_softmax is ppl.BayesianNet.concrete
    assert ppl.BayesianNet.discrete is ppl.BayesianNet.categorical
    normal = ppl.distributions.Normal(jnp.ones(3), logstd=jnp.zeros(3))
    assert normal.mean.shape == (3,) and normal.logstd.shape == (3,)    # ZhuSuan's parameter names
    assert normal.loc.shape == (3,)                                       # and numpyro's attributes
    np.testing.assert_allclose(normal.prob(1.), jnp.exp(normal.log_prob(1.)), rtol=1e-6)
    assert normal.get_batch_shape() == (3,) and normal.dtype == jnp.float32


def test_scope_and_reuse_variables_are_accepted(key):
    def builder():
        bn = ppl.BayesianNet()
        bn.normal("z", 0., std=1.)
        return bn

    plain = ppl.meta_bayesian_net(builder)().observe(key)["z"].value
    for decorate in (ppl.meta_bayesian_net(scope="gen", reuse_variables=True), ppl.meta_bayesian_net("gen")):
        model = decorate(builder)()
        assert model.scope == "gen"
        np.testing.assert_array_equal(model.observe(key)["z"].value, plain)


def _scaled(bn):
    return bn["w"].log_prob + 10. * bn["y"].log_prob


def test_log_joint_fn_forms_agree(key):
    y = np.ones(3, np.float32)
    w = np.array([0.5, -1.], np.float32)
    expected = regression(X).observe(w=w, s=0.3, y=y)
    expected = expected["w"].log_prob + 10. * expected["y"].log_prob

    as_argument = ppl.meta_bayesian_net(regression.__wrapped__, log_joint_fn=_scaled)(X)
    as_decorator = ppl.meta_bayesian_net(log_joint_fn=_scaled)(regression.__wrapped__)(X)
    plain = regression(X)
    copied = plain.with_log_joint(_scaled)
    zhusuan_style = regression(X)
    zhusuan_style.log_joint = _scaled                      # ZhuSuan's attribute setter
    assert plain.log_joint_fn is None and copied.log_joint_fn is _scaled
    assert zhusuan_style.log_joint is _scaled and zhusuan_style.log_joint_fn is _scaled
    for model in (as_argument, as_decorator, copied, zhusuan_style):
        np.testing.assert_allclose(model.observe(w=w, s=0.3, y=y).log_joint(), expected, rtol=1e-6)
    assert plain.observe(w=w, s=0.3, y=y).log_joint() != expected
    with pytest.raises(TypeError, match="log_joint_fn of 'regression' must be a function"):
        plain.log_joint = 3.0


def test_moved_numpyro_classes_warn_and_work():
    with pytest.warns(DeprecationWarning, match=r"ppl.distributions.OneHotCategorical moved to "
                                                r"ppl.numpyro_extras.OneHotCategorical"):
        cls = ppl.distributions.OneHotCategorical
    assert cls is ppl.numpyro_extras.OneHotCategorical
    with pytest.warns(DeprecationWarning, match="logits_from"):
        assert ppl.distributions.logits_from(probs=1.) == 0.
