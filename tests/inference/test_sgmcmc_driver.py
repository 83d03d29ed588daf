"""The SG-MCMC driver: a plain log-joint function, compile once, resume, float64, renamed arguments,
clear errors, and PSGLD's Gamma correction against a correlated Gaussian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference import sgmcmc
from inference.compile_cache import PROGRAMS
from inference.mcmc_result import MCMCResult

COV = np.array([[1.0, 1.8], [1.8, 4.0]])   # sds 1 and 2, correlation 0.9
PRECISION = np.linalg.inv(COV)


def gaussian_log_joint(position):
    z = position["z"]
    return -0.5 * z @ jnp.asarray(PRECISION, z.dtype) @ z


def regression_log_joint(position, batch):
    """`(position, batch) -> log p`: a N(0, 1) prior and a unit-noise likelihood rescaled by N / B = 10."""
    w = position["w"]
    residual = batch["y"] - batch["x"] @ w
    return -0.5 * jnp.sum(w ** 2) - 0.5 * 10.0 * jnp.sum(residual ** 2)


def regression_data(seed, n=40):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return {"x": x, "y": (x @ np.array([1.0, -1.0, 0.5]) + rng.normal(size=n)).astype(np.float32)}


def test_plain_log_joint_function():
    result = sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.05), gaussian_log_joint, init={"z": jnp.zeros(2)},
                           n_samples=30, n_warmup=10, thinning=2, n_chains=3, progress_bar=False)
    assert isinstance(result, MCMCResult) and isinstance(result.state, sgmcmc.SGMCMCState)
    samples, info = result
    assert samples["z"].shape == (3, 30, 2) and info.learning_rate.shape == (3, 30)
    assert int(result.state.step) == 10 + 30 * 2 and result.state.permutation.shape == (3, 0)
    assert np.all(np.isfinite(samples["z"]))
    with pytest.raises(ValueError, match="in steps"):
        sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.05), gaussian_log_joint, init={"z": jnp.zeros(2)},
                      n_epochs=3)
    with pytest.raises(TypeError, match="log_joint_fn\\(position\\)"):
        sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.05), regression_log_joint, init={"w": jnp.zeros(3)},
                      n_samples=3)


def test_compiles_once_across_calls_with_new_data():
    # New data arrays, a new starting point, a new sampler object and another learning rate: the
    # program is built once (the learning rate is traced).
    builds = PROGRAMS.n_builds
    for call in range(3):
        result = sgmcmc.sample(jax.random.key(call), sgmcmc.SGHMC(1e-3 * (call + 1)), regression_log_joint,
                               regression_data(call), {"w": jnp.full(3, float(call))}, batch_size=4,
                               n_epochs=2, n_chains=2, progress_bar=False)
        assert result.samples["w"].shape == (2, 20, 3)
    assert PROGRAMS.n_builds - builds == 1


SAMPLERS = [sgmcmc.SGLD(1e-3), sgmcmc.PSGLD(1e-3, correction=True), sgmcmc.SGHMC(1e-3),
            sgmcmc.SGNHT(1e-3, variance_extra=0.1)]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=["sgld", "psgld", "sghmc", "sgnht"])
def test_resume_equals_one_long_run(sampler):
    # 10 minibatches per epoch and thinning 3: calls end mid-epoch, so the data order is carried too.
    data = regression_data(0)
    common = dict(batch_size=4, thinning=3, n_chains=2, progress_bar=False)
    init = {"w": jnp.zeros(3)}
    long = sgmcmc.sample(jax.random.key(5), sampler, regression_log_joint, data, init, n_epochs=4, **common)
    first = sgmcmc.sample(jax.random.key(5), sampler, regression_log_joint, data, init, n_epochs=2, **common)
    second = sgmcmc.sample(jax.random.key(5), sampler, regression_log_joint, data, n_epochs=2,
                           resume=first.state, **common)
    both = np.concatenate([first.samples["w"], second.samples["w"]], axis=1)
    np.testing.assert_array_equal(long.samples["w"], both)


def test_float64():
    with jax.enable_x64(True):
        data = {name: value.astype(np.float64) for name, value in regression_data(1).items()}
        result = sgmcmc.sample(jax.random.key(0), sgmcmc.SGHMC(1e-3), regression_log_joint, data,
                               {"w": jnp.zeros(3, jnp.float64)}, batch_size=4, n_epochs=1, n_chains=2,
                               progress_bar=False)
        assert result.samples["w"].dtype == np.float64
        assert result.state.sampler.position["w"].dtype == jnp.float64
        assert result.state.permutation.dtype == jnp.int32
        result = sgmcmc.sample(jax.random.key(0), sgmcmc.PSGLD(1e-3), gaussian_log_joint,
                               init={"z": jnp.zeros(2, jnp.float64)}, n_samples=5, progress_bar=False)
        assert result.samples["z"].dtype == np.float64


def test_deprecated_names_warn_and_work():
    data = regression_data(2)
    new = sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(1e-3), regression_log_joint, data, {"w": jnp.zeros(3)},
                        batch_size=4, n_epochs=1, n_warmup_epochs=1, thinning=2, progress_bar=False)
    with pytest.warns(DeprecationWarning, match="'n_burnin_epochs' is deprecated.*'n_warmup_epochs'"):
        old = sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(1e-3), regression_log_joint, data,
                            {"w": jnp.zeros(3)}, batch_size=4, n_epochs=1, n_burnin_epochs=1, thin=2,
                            show_progress=False)
    np.testing.assert_array_equal(new.samples["w"], old.samples["w"])


def test_update_refuses_a_log_joint_function():
    sampler = sgmcmc.SGLD(0.1)
    state = sampler.init({"z": jnp.zeros(2)})
    with pytest.raises(TypeError, match=r"gradient.*shape \(\).*jax.grad\(log_joint_fn\)"):
        sampler.update(jax.random.key(0), state, gaussian_log_joint)
    with pytest.raises(TypeError, match="gradient"):
        sampler.update(jax.random.key(0), state, jnp.zeros(2))
    with pytest.raises(TypeError, match="needs the gradient as a function"):
        psgld = sgmcmc.PSGLD(0.1, correction=True)
        psgld.update(jax.random.key(0), psgld.init({"z": jnp.zeros(2)}), {"z": jnp.zeros(2)})


def _psgld_moments(correction, key, n_chains=64, n_warmup=5000, n_samples=25000):
    result = sgmcmc.sample(key, sgmcmc.PSGLD(0.005, decay=0.9, correction=correction), gaussian_log_joint,
                           init={"z": jnp.zeros(2)}, n_samples=n_samples, n_warmup=n_warmup,
                           n_chains=n_chains, progress_bar=False)
    z = np.asarray(result.samples["z"], np.float64)
    # per-chain estimates of E[z z^T]: chains are independent, so their spread gives the standard error
    second = np.einsum("cti,ctj->cij", z, z) / z.shape[1]
    return second.mean(0), second.std(0, ddof=1) / np.sqrt(n_chains)


@pytest.mark.slow
def test_psgld_correction_matches_a_correlated_gaussian():
    # Without the Gamma term pSGLD's stationary covariance is far off (+150% in the variances at this
    # learning rate, module docstring of inference.sgmcmc.psgld); with it, each entry of E[z z^T]
    # must match COV within |z| < 4.5 standard errors (3 entries: false-failure rate < 2e-5 for a
    # t statistic with 63 dof). The remaining O(learning_rate) bias (-2% measured) is below 0.5 SE.
    mean, stderr = _psgld_moments(True, jax.random.key(0))
    for i, j in [(0, 0), (1, 1), (0, 1)]:
        assert abs(mean[i, j] - COV[i, j]) < 4.5 * stderr[i, j], (i, j, mean[i, j], stderr[i, j])
    uncorrected, uncorrected_stderr = _psgld_moments(False, jax.random.key(0))
    assert (uncorrected[1, 1] - COV[1, 1]) > 4.5 * uncorrected_stderr[1, 1]   # measured: z = 7.8


def test_mesh_errors_name_the_axis():
    # Raised before anything is traced (the sizes themselves are checked on 4 devices in
    # test_train_sharding.py, where the axes can be larger than 1).
    one_device = np.asarray(jax.devices()[:1])
    common = dict(init={"z": jnp.zeros(2)}, n_samples=3, progress_bar=False)
    with pytest.raises(ValueError, match="'data' axis .* no data"):
        sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.1), gaussian_log_joint,
                      mesh=jax.sharding.Mesh(one_device, ("data",)), **common)
    with pytest.raises(ValueError, match="'chains' axis .* and/or a 'data' axis"):
        sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.1), gaussian_log_joint,
                      mesh=jax.sharding.Mesh(one_device, ("model",)), **common)
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.1), gaussian_log_joint, mesh="chains", **common)
