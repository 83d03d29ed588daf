"""Checkpoints: save/load any pytree atomically; `fit` resumes bit for bit."""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import inference
from inference.checkpoint import latest_checkpoint

pytest.importorskip("orbax.checkpoint")


class Inner(NamedTuple):
    weights: jax.Array
    flags: np.ndarray


def tree_equal(a, b) -> bool:
    """Same structure, and leaves with the same dtypes and values (PRNG keys by their key data)."""
    def host(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(host(x).dtype == host(y).dtype and np.array_equal(host(x), host(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def other_values(x):
    """A leaf of the same type, shape and dtype with other values (`like` gives only the structure)."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.key(0)
    if isinstance(x, (int, float)):
        return type(x)(0)
    return np.zeros_like(x) if isinstance(x, (np.ndarray, np.generic)) else jnp.zeros_like(x)


def mixed_tree():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3, jnp.bfloat16)}
    return {"params": params, "opt_state": optax.adam(1e-3).init(params),
            "inner": Inner(jnp.array([1.5, -2.0]), np.array([True, False])), "key": jax.random.key(7),
            "raw_key": jax.random.PRNGKey(3), "count": np.int64(5), "empty": jnp.zeros((0, 4)),
            "nothing": None, "scalar": 2.5}


def test_round_trip_restores_structure_dtypes_and_values(tmp_path):
    tree = mixed_tree()
    path = inference.save_checkpoint(tmp_path / "ckpt", tree, metadata={"note": "x", "value": float("nan")})
    assert path == (tmp_path / "ckpt").absolute() and sorted(os.listdir(tmp_path)) == ["ckpt"]
    like = jax.tree.map(other_values, mixed_tree())
    restored = inference.load_checkpoint(path, like=like)
    assert isinstance(restored["inner"], Inner)
    assert isinstance(restored["opt_state"][0], optax.ScaleByAdamState)
    assert restored["nothing"] is None and restored["empty"].shape == (0, 4)
    assert restored["params"]["b"].dtype == jnp.bfloat16
    assert jax.dtypes.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
    assert tree_equal(restored, tree)
    meta = inference.load_checkpoint_metadata(path)
    assert meta["note"] == "x" and np.isnan(meta["value"])
    plain = inference.load_checkpoint(path)         # no `like`: nested dicts, same values
    assert isinstance(plain["inner"], dict)
    np.testing.assert_array_equal(plain["inner"]["weights"], tree["inner"].weights)
    assert plain["empty"].shape == (0, 4)


def test_float64_round_trip(tmp_path):
    with jax.enable_x64(True):
        tree = {"x": jnp.asarray([1 / 3, 2 / 3], jnp.float64), "n": jnp.asarray(2**40, jnp.int64)}
        inference.save_checkpoint(tmp_path / "c", tree)
        restored = inference.load_checkpoint(tmp_path / "c", like=tree)
        assert restored["x"].dtype == jnp.float64 and tree_equal(restored, tree)


def test_mcmc_states_round_trip(tmp_path):
    hmc_state = inference.hmc.init({"w": jnp.ones(3)}, lambda p: -0.5 * jnp.sum(p["w"] ** 2))
    sghmc_state = jax.vmap(inference.SGHMC(1e-3).init)({"w": jnp.ones((4, 3))})   # 4 chains
    for name, state in {"hmc": hmc_state, "sghmc": sghmc_state}.items():
        inference.save_checkpoint(tmp_path / name, state)
        restored = inference.load_checkpoint(tmp_path / name, like=state)
        assert type(restored) is type(state) and tree_equal(restored, state)


def test_like_mismatch_names_the_leaf_and_shapes(tmp_path):
    inference.save_checkpoint(tmp_path / "c", {"a": jnp.zeros(3), "b": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"leaf 'a' is float32\[3\] in the checkpoint but float32\[4\]"):
        inference.load_checkpoint(tmp_path / "c", like={"a": jnp.zeros(4), "b": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"only in `like`: \['c'\]"):
        inference.load_checkpoint(tmp_path / "c", like={"a": jnp.zeros(3), "b": jnp.zeros(2),
                                                        "c": jnp.zeros(1)})
    with pytest.raises(ValueError, match=r"leaf 'b' is float32\[2\] in the checkpoint but int32\[2\]"):
        inference.load_checkpoint(tmp_path / "c", like={"a": jnp.zeros(3), "b": jnp.zeros(2, jnp.int32)})


def test_existing_path_is_refused_unless_overwrite(tmp_path):
    inference.save_checkpoint(tmp_path / "c", {"a": jnp.zeros(2)})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        inference.save_checkpoint(tmp_path / "c", {"a": jnp.ones(2)})
    inference.save_checkpoint(tmp_path / "c", {"a": jnp.ones(2)}, overwrite=True)
    np.testing.assert_array_equal(inference.load_checkpoint(tmp_path / "c")["a"], [1.0, 1.0])
    assert sorted(os.listdir(tmp_path)) == ["c"]                    # no staging or old copy left


def test_bad_leaf_writes_nothing_and_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"leaf 'f' is a builtin_function_or_method; a checkpoint holds"):
        inference.save_checkpoint(tmp_path / "c", {"a": jnp.zeros(2), "f": len})
    assert not os.listdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        inference.load_checkpoint(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ resume
def baseline_loss(params, key, batch, state):
    """A noisy quadratic with a REINFORCE-style moving average in its state."""
    noise = jax.random.normal(key, params["w"].shape)
    signal = jnp.sum((batch - params["w"] - 0.1 * noise) ** 2, -1)
    cost = jnp.mean(signal)
    state = {"average": 0.9 * state["average"] + 0.1 * cost, "steps": state["steps"] + 1}
    return cost, (state, {"average": state["average"]})


def fit_args(rows):
    return (jax.random.key(5), baseline_loss, {"w": jnp.zeros(3)}, OPTIMIZER, rows)


OPTIMIZER = optax.adam(0.05)
STATE = {"average": jnp.zeros(()), "steps": jnp.zeros((), jnp.int32)}


class Interrupt(Exception):
    pass


@pytest.fixture
def rows():
    return np.asarray(jax.random.normal(jax.random.key(1), (50, 3)))



def test_a_checkpoint_keeps_the_history_of_its_own_epoch(tmp_path, rows, monkeypatch):
    # Saves finish in the background while training goes on: the history stored with the checkpoint
    # of epoch e must hold e entries, whatever later epochs append (a live list let epoch e + 1 in
    # when the save was slow, so a resumed run repeated an epoch in its history).
    from inference.checkpoint import TrainCheckpoints
    saved = []
    original = TrainCheckpoints.save

    def recording_save(self, epoch, pytree, metadata):
        saved.append((epoch, metadata))
        return original(self, epoch, pytree, metadata)
    monkeypatch.setattr(TrainCheckpoints, "save", recording_save)
    inference.fit(*fit_args(rows), n_epochs=3, batch_size=8, state=STATE, progress_bar=False,
                  checkpoint_dir=tmp_path)
    assert [epoch for epoch, _ in saved] == [1, 2, 3]
    assert [len(metadata["history"]) for _, metadata in saved] == [1, 2, 3]

def test_interrupted_then_resumed_equals_uninterrupted_bit_for_bit(tmp_path, rows):
    kwargs = dict(n_epochs=5, batch_size=8, state=STATE, progress_bar=False)
    straight = inference.fit(*fit_args(rows), **kwargs)

    def interrupt_after_3(epoch, params, state, record):
        if epoch == 3:
            raise Interrupt                           # as a KeyboardInterrupt would, after epoch 3
    with pytest.raises(Interrupt):
        inference.fit(*fit_args(rows), **kwargs, checkpoint_dir=tmp_path, callback_fn=interrupt_after_3)
    assert latest_checkpoint(tmp_path).name == "2"   # epoch 3 was interrupted before its save
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]
    resumed = inference.fit(*fit_args(rows), **kwargs, checkpoint_dir=tmp_path, resume=True)
    for field in ("params", "opt_state", "state"):
        assert tree_equal(getattr(resumed, field), getattr(straight, field)), field
    for name in ("cost", "average", "n_skipped"):
        np.testing.assert_array_equal(resumed.history[name], straight.history[name])
    assert tree_equal(resumed.key, straight.key)
    assert sorted(os.listdir(tmp_path)) == ["4", "5"]         # max_to_keep=2
    like = {"params": straight.params, "opt_state": straight.opt_state, "state": straight.state,
            "key": np.zeros(2, np.uint32)}                     # the run's key, as its key data
    saved = inference.load_checkpoint(tmp_path, like=like)
    assert tree_equal(saved["params"], straight.params)
    assert inference.load_checkpoint_metadata(tmp_path)["epoch"] == 5


def test_resume_of_a_finished_run_returns_it_and_a_longer_run_continues(tmp_path, rows):
    kwargs = dict(batch_size=8, state=STATE, progress_bar=False, checkpoint_dir=tmp_path)
    first = inference.fit(*fit_args(rows), n_epochs=2, **kwargs)
    again = inference.fit(*fit_args(rows), n_epochs=2, resume=True, **kwargs)
    assert tree_equal(again.params, first.params) and again.history["cost"].shape == (2,)
    longer = inference.fit(*fit_args(rows), n_epochs=4, resume=True, **kwargs)
    straight = inference.fit(*fit_args(rows), n_epochs=4, batch_size=8, state=STATE, progress_bar=False)
    assert tree_equal(longer.params, straight.params) and longer.history["cost"].shape == (4,)


def test_checkpoint_directory_rules(tmp_path, rows):
    kwargs = dict(n_epochs=1, batch_size=8, state=STATE, progress_bar=False)
    fresh = inference.fit(*fit_args(rows), **kwargs, checkpoint_dir=tmp_path / "a", resume=True)  # none yet
    assert latest_checkpoint(tmp_path / "a").name == "1"
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        inference.fit(*fit_args(rows), **kwargs, checkpoint_dir=tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        inference.fit(*fit_args(rows), **kwargs, resume=tmp_path / "b")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        inference.fit(*fit_args(rows), **kwargs, checkpoint_dir=tmp_path / "file")
    with pytest.raises(ValueError, match="resume=True continues from checkpoint_dir"):
        inference.fit(*fit_args(rows), **kwargs, resume=True)
    os.makedirs(tmp_path / "a" / "7.orbax-checkpoint-tmp-123")     # an interrupted save is ignored
    assert latest_checkpoint(tmp_path / "a").name == "1"
    with pytest.warns(UserWarning, match="with the key it was started with"):
        other_key = inference.fit(jax.random.key(99), *fit_args(rows)[1:], **kwargs, resume=tmp_path / "a")
    assert tree_equal(other_key.params, fresh.params)


def test_an_exhausted_iterator_keeps_its_last_epochs(tmp_path, rows):
    batches = [rows[i:i + 10] for i in range(0, 50, 10)]
    with pytest.warns(UserWarning, match="training stops after the last complete epoch"):
        result = inference.fit(*fit_args(rows)[:4], iter(batches * 3), n_epochs=5, steps_per_epoch=5,
                               state=STATE, checkpoint_dir=tmp_path, checkpoint_every=2, progress_bar=False)
    assert result.history["cost"].shape == (3,) and latest_checkpoint(tmp_path).name == "3"
