"""`inference.fit`: convergence, skipped non-finite steps, one compilation, data modes, validation."""

from __future__ import annotations

import warnings

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import inference
from tests.inference import train_models as tm


def quadratic_loss(params, key, batch, state):
    """Mean squared distance of the batch rows to params["w"], plus a noise term from the key."""
    noise = 0.01 * jax.random.normal(key, params["w"].shape)
    cost = jnp.mean(jnp.sum((batch - params["w"] - noise) ** 2, axis=-1))
    return cost, (state, {"w0": params["w"][0]})


@pytest.fixture
def rows():
    return np.asarray(jax.random.normal(jax.random.key(11), (64, 3))) + 2.0


class CompileCounter:
    """Counts XLA backend compilations while active."""

    def __init__(self):
        self.count = 0

    def listen(self, name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self.listen)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self.listen)


def test_conjugate_model_reaches_closed_form_posterior():
    # Full-batch SGVB with the path-derivative ("sticking the landing") estimator, whose variance is
    # zero at q = p: the iterates converge to the exact posterior rather than fluctuating around it,
    # so the tolerance bounds the optimisation error (measured 2e-4 sd and 0.4% here), not Monte Carlo
    # noise; 1% of the posterior sd and 3% of the sd leave room for float32 rounding across platforms.
    x = tm.data(jax.random.key(1))
    mean, std = tm.exact_posterior(x)
    schedule = optax.join_schedules([optax.constant_schedule(0.05), optax.exponential_decay(0.05, 300, 1e-3)],
                                    [500])
    result = inference.fit(jax.random.key(2), tm.sgvb_loss(len(x)), tm.init_params(), optax.adam(schedule), x,
                           n_epochs=800, batch_size=len(x), progress_bar=False)
    assert abs(float(result.params["mean"]) - mean) < 0.01 * std
    assert abs(float(jnp.exp(result.params["log_std"])) / std - 1) < 0.03
    assert result.history["elbo"].shape == (800,) and np.all(result.history["n_skipped"] == 0)


def test_history_and_result(rows):
    result = inference.fit(jax.random.key(0), quadratic_loss, {"w": jnp.zeros(3)}, optax.sgd(0.1), rows,
                           n_epochs=3, batch_size=10, progress_bar=False)
    assert set(result.history) == {"cost", "w0", "n_skipped", "seconds"}
    assert all(v.shape == (3,) for v in result.history.values())
    assert result.history["cost"][-1] < result.history["cost"][0]
    assert isinstance(result.opt_state, tuple) and result.state is None
    assert result.key.shape == () and not np.array_equal(jax.random.key_data(result.key),
                                                         jax.random.key_data(jax.random.key(0)))
    np.testing.assert_allclose(result.params["w"], rows.mean(0), atol=0.2)


def test_same_key_same_run_and_other_key_other_run(rows):
    optimizer = optax.adam(0.1)            # one optimizer object: one compiled program for all runs

    def run(seed):
        return inference.fit(jax.random.key(seed), quadratic_loss, {"w": jnp.zeros(3)}, optimizer, rows,
                             n_epochs=2, batch_size=10, progress_bar=False).params["w"]
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_nonfinite_steps_are_skipped_counted_and_warned(rows):
    rows = rows.copy()
    rows[5] = np.nan                       # one example poisons the one batch it falls in, each epoch
    with pytest.warns(RuntimeWarning, match="non-finite cost or gradient and were skipped"):
        result = inference.fit(jax.random.key(0), quadratic_loss, {"w": jnp.zeros(3)}, optax.adam(0.1),
                               rows, n_epochs=4, batch_size=8, progress_bar=False)
    np.testing.assert_array_equal(result.history["n_skipped"], [1, 1, 1, 1])   # 64 rows, 8 batches of 8
    assert np.all(np.isfinite(result.params["w"])) and np.all(np.isfinite(result.history["cost"]))
    assert int(result.opt_state[0].count) == 4 * 7                     # the skipped steps did not count


def test_a_nonfinite_gradient_alone_skips_the_step_and_changes_nothing():
    def loss_fn(params, key, batch, state):   # finite cost, infinite gradient at w = 0
        return jnp.sum(jnp.sqrt(jnp.abs(params["w"]))) + 0 * jnp.sum(batch), (state + 1, {})
    params = {"w": jnp.zeros(2)}
    with pytest.warns(RuntimeWarning):
        result = inference.fit(jax.random.key(0), loss_fn, params, optax.sgd(0.1), np.zeros((6, 1)),
                               n_epochs=2, batch_size=3, state=jnp.zeros((), jnp.int32), progress_bar=False)
    np.testing.assert_array_equal(result.params["w"], params["w"])
    assert int(result.state) == 0                                       # the state was not advanced either
    np.testing.assert_array_equal(result.history["n_skipped"], [2, 2])
    assert np.all(np.isnan(result.history["cost"]))                     # no applied step to average


def test_compiles_once_across_epochs_and_fit_calls(rows):
    optimizer = optax.adam(0.05)
    kwargs = dict(n_epochs=3, batch_size=16, progress_bar=False)
    keys, params = jax.random.split(jax.random.key(0)), [{"w": jnp.zeros(3)}, {"w": jnp.ones(3)}]
    inference.fit(keys[0], quadratic_loss, params[0], optimizer, rows, **kwargs)
    with CompileCounter() as counter:          # inputs are made outside: only fit's own work is counted
        second = inference.fit(keys[1], quadratic_loss, params[1], optimizer, rows, **kwargs)
        longer = inference.fit(keys[1], quadratic_loss, params[1], optimizer, rows + 1,
                               **{**kwargs, "n_epochs": 7})
    assert counter.count == 0
    assert second.history["cost"].shape == (3,) and longer.history["cost"].shape == (7,)


def test_results_do_not_depend_on_how_epochs_are_grouped(rows):
    # 64 rows in batches of 32 are 2 steps: without a callback many epochs share one compiled call;
    # with a callback every epoch is its own call. Epoch e always draws with fold_in(key, e).
    args = (jax.random.key(3), quadratic_loss, {"w": jnp.zeros(3)}, optax.adam(0.05), rows)
    grouped = inference.fit(*args, n_epochs=5, batch_size=32, progress_bar=False)
    single = inference.fit(*args, n_epochs=5, batch_size=32, progress_bar=False, callback_fn=lambda *a: None)
    np.testing.assert_array_equal(grouped.params["w"], single.params["w"])
    np.testing.assert_array_equal(grouped.history["cost"], single.history["cost"])


def test_eval_fn_and_early_stopping(rows):
    seen = []

    def eval_fn(params, key, state):
        return {"distance": jnp.linalg.norm(params["w"] - 2.0), "noise": jax.random.normal(key)}

    def callback_fn(epoch, params, state, record):
        seen.append((epoch, record.get("distance", np.nan)))   # evaluated epochs only
        return epoch == 4

    result = inference.fit(jax.random.key(0), quadratic_loss, {"w": jnp.zeros(3)}, optax.adam(0.1), rows,
                           n_epochs=10, batch_size=16, eval_fn=eval_fn, eval_every=2, callback_fn=callback_fn,
                           progress_bar=False)
    assert result.history["cost"].shape == (4,)                          # stopped after epoch 4
    distance = result.history["distance"]
    assert np.isnan(distance[0]) and np.isnan(distance[2]) and distance[3] < distance[1]
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4] and np.isnan(seen[0][1])
    assert result.history["noise"][1] != result.history["noise"][3]      # a fresh key per evaluation


def test_loss_state_is_carried():
    def loss_fn(params, key, batch, state):
        log_joint = -jnp.sum((batch - params["w"]) ** 2, -1)[None]
        result = inference.estimators.reinforce(log_joint, jnp.zeros(()), state, axis=0)
        return jnp.mean(result.cost), (result.state, {})
    result = inference.fit(jax.random.key(0), loss_fn, {"w": jnp.zeros(())}, optax.sgd(0.01), np.ones((12,)),
                           n_epochs=2, batch_size=4, state=inference.reinforce_init(), progress_bar=False)
    assert isinstance(result.state, inference.ReinforceState) and int(result.state.n_updates) == 6


def test_drop_remainder_and_wrapped_last_batch():
    indices = np.asarray(inference.batch_indices(jax.random.key(0), 10, 4, 2, drop_remainder=True))
    assert indices.shape == (2, 4) and len(set(indices.ravel())) == 8
    wrapped = np.asarray(inference.batch_indices(jax.random.key(0), 10, 4, 3, drop_remainder=False))
    assert wrapped.shape == (3, 4) and set(wrapped.ravel()) == set(range(10))
    np.testing.assert_array_equal(wrapped.ravel()[10:], wrapped.ravel()[:2])
    ordered = np.asarray(inference.batch_indices(jax.random.key(0), 10, 5, 2, shuffle=False))
    np.testing.assert_array_equal(ordered.ravel(), np.arange(10))

    seen = []

    def loss_fn(params, key, batch, state):
        jax.debug.callback(lambda b: seen.append(np.asarray(b).copy()), batch)
        return jnp.mean((batch - params["w"]) ** 2), (state, {})
    inference.fit(jax.random.key(0), loss_fn, {"w": jnp.zeros(())}, optax.sgd(0.1), np.arange(10.0),
                  n_epochs=1, batch_size=4, drop_remainder=False, progress_bar=False)
    assert len(seen) == 3 and set(np.concatenate(seen)) == set(range(10))


def test_batches_from_a_callable_or_an_iterator_equal_the_array_path(rows):
    batches = [rows[i:i + 16] for i in range(0, 64, 16)]
    args = (jax.random.key(0), quadratic_loss, {"w": jnp.zeros(3)}, optax.adam(0.1))
    from_arrays = inference.fit(*args, rows, n_epochs=2, batch_size=16, shuffle=False, progress_bar=False)
    from_callable = inference.fit(*args, lambda epoch: iter(batches), n_epochs=2, progress_bar=False)
    from_iterator = inference.fit(*args, iter(batches * 2), n_epochs=2, steps_per_epoch=4, progress_bar=False)
    np.testing.assert_array_equal(from_arrays.params["w"], from_callable.params["w"])
    np.testing.assert_array_equal(from_arrays.params["w"], from_iterator.params["w"])
    with pytest.warns(UserWarning, match="training stops after the last complete epoch"):
        short = inference.fit(*args, iter(batches * 2), n_epochs=5, steps_per_epoch=4, progress_bar=False)
    assert short.history["cost"].shape == (2,)
    with pytest.raises(ValueError, match="epoch 0, step 2: the batch has shapes"):
        inference.fit(*args, lambda epoch: [rows[:16], rows[:16], rows[:8]], n_epochs=1, progress_bar=False)


def test_float64_follows_the_data():
    with jax.enable_x64(True):
        rows = np.random.default_rng(0).normal(size=(20, 2))
        result = inference.fit(jax.random.key(0), quadratic_loss, {"w": jnp.zeros(2, jnp.float64)},
                               optax.adam(0.1), rows, n_epochs=2, batch_size=5, progress_bar=False)
        assert result.params["w"].dtype == jnp.float64
        assert result.opt_state[0].mu["w"].dtype == jnp.float64


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_epochs": 0, "batch_size": 8}, ValueError, "n_epochs must be an int >= 1"),
    ({"n_epochs": 1.5, "batch_size": 8}, ValueError, "n_epochs"),
    ({"n_epochs": 1, "batch_size": 0}, ValueError, r"batch_size must be an int in \[1, 64\]"),
    ({"n_epochs": 1, "batch_size": 65}, ValueError, r"batch_size must be an int in \[1, 64\]"),
    ({"n_epochs": 1}, ValueError, "batch_size"),
    ({"n_epochs": 1, "batch_size": 8, "eval_every": 0}, ValueError, "eval_every"),
    ({"n_epochs": 1, "batch_size": 8, "steps_per_epoch": 3}, ValueError, "steps_per_epoch is for batches"),
])
def test_bad_arguments_fail_before_tracing(rows, kwargs, error, match):
    traced = []

    def loss_fn(*args):
        traced.append(1)
        return quadratic_loss(*args)
    with pytest.raises(error, match=match):
        inference.fit(jax.random.key(0), loss_fn, {"w": jnp.zeros(3)}, optax.sgd(0.1), rows,
                      progress_bar=False, **kwargs)
    assert not traced


def test_bad_data_params_and_loss_outputs(rows):
    args = (jax.random.key(0),)
    sgd = optax.sgd(0.1)
    with pytest.raises(ValueError, match="same leading"):
        inference.fit(*args, quadratic_loss, {"w": jnp.zeros(3)}, sgd, {"a": rows, "b": rows[:5]}, n_epochs=1,
                      batch_size=4)
    with pytest.raises(TypeError, match=r"params leaf \['n'\] has dtype int32"):
        inference.fit(*args, quadratic_loss, {"w": jnp.zeros(3), "n": jnp.zeros(2, jnp.int32)}, sgd, rows,
                      n_epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="iterator of batches needs steps_per_epoch"):
        inference.fit(*args, quadratic_loss, {"w": jnp.zeros(3)}, sgd, iter([rows]), n_epochs=1)
    bad_losses = {
        "must return \\(cost, \\(state, metrics\\)\\)": lambda p, k, b, s: jnp.sum(p["w"]),
        "cost must be a float scalar": lambda p, k, b, s: (jnp.sum(b - p["w"], 0), (s, {})),
        "structure, shapes and dtypes": lambda p, k, b, s: (jnp.sum(p["w"]), (jnp.zeros(2), {})),
        "metrics must be a dict of scalars": lambda p, k, b, s: (jnp.sum(p["w"]), (s, {"v": p["w"]})),
    }
    for match, loss_fn in bad_losses.items():
        with pytest.raises((TypeError, ValueError), match=match):
            inference.fit(*args, loss_fn, {"w": jnp.zeros(3)}, sgd, rows, n_epochs=1, batch_size=4,
                          progress_bar=False)


def test_progress_bar_runs_without_errors(rows, capsys):
    pytest.importorskip("tqdm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inference.fit(jax.random.key(0), quadratic_loss, {"w": jnp.zeros(3)}, optax.sgd(0.1), rows,
                      n_epochs=3, batch_size=8, progress_bar=True)
    assert "fit" in capsys.readouterr().err
