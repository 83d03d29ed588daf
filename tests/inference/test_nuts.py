"""NUTS: the iterative tree against a direct recursive implementation, the kernel's contract, and the
divergences of the centred eight-schools funnel."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import inference
import ppl
from inference.hmc import init, nuts
from tests.inference.nuts_reference import transition as reference_transition

SCALES = jnp.array([0.3, 1.0, 3.0])


def quartic_log_joint(position):
    """An anisotropic, slightly non-Gaussian target: trees of varied depths and turning points."""
    x = position["x"]
    return -0.5 * jnp.sum((x / SCALES) ** 2) - 0.0025 * jnp.sum(x ** 4)


# (max_tree_depth, step size, inverse mass, divergence threshold): ordinary trees, trees cut by the
# depth limit, deep trees (up to 7 doublings, subtrees rejected inside by the checks across halves),
# large steps that diverge (a low threshold makes divergences common), a dense metric.
CASES = [(10, 0.25, [1.0, 1.0, 1.0], 1000.0), (3, 0.1, [1.0, 1.0, 1.0], 1000.0),
         (10, 0.04, [1.0, 1.0, 1.0], 1000.0), (10, 0.9, [0.5, 1.0, 2.0], 5.0),
         (10, 0.3, [[1.0, 0.2, 0.0], [0.2, 1.0, 0.0], [0.0, 0.0, 4.0]], 1000.0)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_tree_matches_the_recursive_reference(case):
    # Same key -> the same tree (depth, number of steps, divergence, U-turn), the same proposal and
    # the same acceptance statistic as Stan's recursion with the same random numbers. In float64 so
    # that no U-turn decision sits within round-off of zero; 16 transitions per case (6 for the
    # deep trees, whose reference runs op by op), each from its own random start.
    max_depth, step_size, inverse_mass, threshold = CASES[case]
    n_transitions = 6 if step_size < 0.05 else 16
    with jax.enable_x64(True):
        inverse_mass = jnp.asarray(inverse_mass, jnp.float64)
        kernel = jax.jit(nuts.build_kernel(max_depth, threshold), static_argnums=2)
        seen = set()
        for i in range(n_transitions):
            key = jax.random.key(i)
            position = {"x": jax.random.normal(jax.random.key(1000 + i), (3,), jnp.float64)}
            state = init(position, quartic_log_joint)
            new, info = kernel(key, state, quartic_log_joint, step_size, inverse_mass)
            ref = reference_transition(key, position, quartic_log_joint, step_size, inverse_mass, max_depth,
                                       threshold)
            assert (int(info.tree_depth), int(info.n_leapfrogs)) == (ref["tree_depth"], ref["n_leapfrogs"]), i
            flags = (bool(info.is_divergent), bool(info.is_turning))
            assert flags == (ref["is_divergent"], ref["is_turning"]), i
            np.testing.assert_allclose(new.position["x"], ref["position"]["x"], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(float(info.acceptance_rate), ref["acceptance_rate"], rtol=1e-10)
            np.testing.assert_allclose(float(info.energy), ref["energy"], rtol=1e-10)
            seen.add((ref["tree_depth"], ref["is_divergent"], ref["is_turning"]))
        assert len(seen) >= 2   # the case exercises more than one kind of tree



@pytest.mark.parametrize("case", [0, 3, 4])
def test_chains_in_lockstep_match_the_recursive_reference(case):
    # `kernel.batched` builds the trees of all chains at once, sharing the step index: chains that
    # stop early (a U-turn, a divergence, the depth limit) must freeze while the others go on. Eight
    # chains, each with its own key, start and step size (so their trees end at different depths),
    # against the recursion run chain by chain.
    max_depth, step_size, inverse_mass, threshold = CASES[case]
    n_chains = 8
    with jax.enable_x64(True):
        inverse_mass = jnp.asarray(inverse_mass, jnp.float64)
        keys = jax.random.split(jax.random.key(7 + case), n_chains)
        positions = {"x": jax.random.normal(jax.random.key(2000 + case), (n_chains, 3), jnp.float64)}
        step_sizes = step_size * jnp.linspace(0.6, 1.4, n_chains)
        states = jax.vmap(lambda p: init(p, quartic_log_joint))(positions)
        kernel = nuts.build_kernel(max_depth, threshold)
        masses = jnp.broadcast_to(inverse_mass, (n_chains, *inverse_mass.shape))
        batched = jax.jit(kernel.batched, static_argnums=2)
        new, info = batched(keys, states, quartic_log_joint, step_sizes, masses)
        depths = set()
        for c in range(n_chains):
            ref = reference_transition(keys[c], {"x": positions["x"][c]}, quartic_log_joint,
                                       float(step_sizes[c]), inverse_mass, max_depth, threshold)
            tree = (int(info.tree_depth[c]), int(info.n_leapfrogs[c]))
            assert tree == (ref["tree_depth"], ref["n_leapfrogs"]), c
            flags = (bool(info.is_divergent[c]), bool(info.is_turning[c]))
            assert flags == (ref["is_divergent"], ref["is_turning"]), c
            np.testing.assert_allclose(new.position["x"][c], ref["position"]["x"], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(float(info.acceptance_rate[c]), ref["acceptance_rate"], rtol=1e-10)
            depths.add(ref["n_leapfrogs"])
        assert len(depths) >= 2   # the chains' trees differ, so some froze while others stepped

def test_kernel_contract():
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    kernel = nuts.build_kernel(max_tree_depth=4)     # small: the eager (op by op) call below is slow
    state = init(jnp.ones(4), log_joint)
    key = jax.random.key(0)
    step = jax.jit(lambda k, s: kernel(k, s, log_joint, 0.3, jnp.ones(4)))
    new, info = step(key, state)
    again, _ = step(key, state)
    np.testing.assert_array_equal(new.position, again.position)                 # same key, same result
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert [x.dtype for x in jax.tree.leaves(new)] == [x.dtype for x in jax.tree.leaves(state)]
    assert 1 <= int(info.n_leapfrogs) <= 2 ** 4 - 1 and 0 <= int(info.tree_depth) <= 4
    assert 0.0 <= float(info.acceptance_rate) <= 1.0
    eager, eager_info = kernel(key, state, log_joint, 0.3, jnp.ones(4))          # op by op
    np.testing.assert_allclose(eager.position, new.position, rtol=1e-5)
    assert int(eager_info.n_leapfrogs) == int(info.n_leapfrogs)
    states = jax.vmap(lambda x: init(x, log_joint))(jnp.ones((5, 4)))           # chains by vmap
    chains, infos = jax.jit(jax.vmap(lambda k, s: kernel(k, s, log_joint, 0.3, jnp.ones(4))))(
        jax.random.split(key, 5), states)
    assert chains.position.shape == (5, 4) and infos.tree_depth.shape == (5,)
    with pytest.raises(ValueError, match="max_tree_depth"):
        nuts.build_kernel(max_tree_depth=0)
    keys = jax.random.split(key, 5)
    batched = kernel.batched(keys, states, log_joint, jnp.full(5, 0.3), jnp.ones((5, 4)))   # all at once
    # the same trees and draws as the vmapped kernel; float32 rounding may differ between the two
    # programs (a few ulps after a handful of leapfrog steps), hence 1e-5
    np.testing.assert_allclose(batched[0].position, chains.position, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(batched[1].n_leapfrogs, infos.n_leapfrogs)
    with pytest.raises(ValueError, match=r"step_size \[C\].*\(\),"):      # a shared step size: say so
        kernel.batched(keys, states, log_joint, 0.3, jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="inverse_mass_matrix"):
        kernel.batched(keys, states, log_joint, jnp.full(5, 0.3), jnp.ones(4))


def test_gradient_evaluations_equal_leapfrog_steps():
    # The cached gradient: a transition of n leapfrog steps evaluates the log-joint n times (jit off,
    # a Python counter), plus none for the start (cached in the state).
    calls = []

    def counted(x):
        calls.append(1)
        return -0.5 * jnp.sum(x ** 2)

    state = init(jnp.ones(2), counted)
    calls.clear()
    with jax.disable_jit():
        _, info = nuts.build_kernel(4)(jax.random.key(1), state, counted, 0.4, jnp.ones(2))
    assert len(calls) == int(info.n_leapfrogs)


J = 8
Y = np.array([28., 8., -3., 7., -1., 1., 18., 12.])
SIGMA = np.array([15., 10., 16., 11., 9., 11., 10., 18.])


@ppl.meta_bayesian_net
def centered_eight_schools(sigma):
    bn = ppl.BayesianNet()
    mu = bn.normal("mu", 0.0, std=5.0)
    tau = bn.stochastic("tau", dist.HalfCauchy(5.0))
    theta = bn.normal("theta", jnp.broadcast_to(mu, (J,)), std=jnp.broadcast_to(tau, (J,)), group_ndims=1)
    bn.normal("y", theta, std=sigma, group_ndims=1)
    return bn


@pytest.mark.slow
def test_divergences_of_the_centred_eight_schools_funnel():
    # The centred parameterisation has a funnel at small tau that a step size tuned for the bulk cannot
    # follow: NUTS must flag divergent transitions there (Betancourt and Girolami 2015; Stan reports
    # them on this model at adapt_delta 0.8). They are a property of the posterior, not of one seed:
    # 4 chains x 500 draws show dozens. And they sit in the neck: the divergent draws' mean log tau
    # is below the others'.
    result = inference.NUTS().sample(jax.random.key(0), centered_eight_schools(jnp.asarray(SIGMA)),
                                     {"y": jnp.asarray(Y)}, n_samples=500, n_warmup=500, n_chains=4)
    divergent = np.asarray(result.info.is_divergent)
    log_tau = np.log(np.asarray(result.samples["tau"]))
    assert divergent.sum() >= 5, divergent.sum()
    assert log_tau[divergent].mean() < log_tau[~divergent].mean()
    assert np.all(np.asarray(result.info.tree_depth) <= 10)
