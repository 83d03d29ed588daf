"""What every SG-MCMC sampler shares: the (minibatch) log-joint gradient and the Gaussian noise.

The samplers work on a dict of real-valued latents, `position = {name: array}`; a model's
constrained latents enter through their unconstrained values, with the Jacobian added
(`minibatch_log_joint_fn`, the same log-joint HMC samples). Their gradient is
that of the model's log-joint conditioned on a minibatch; for it to estimate the full-data
gradient without bias, the model's likelihood must be rescaled by `N / batch_size` (ZhuSuan's
examples do this by setting `model.log_joint`; `scaled_log_joint` builds such a function):

.. math::
  \\nabla \\log \\tilde p(z) = \\nabla \\log p(z) + \\frac{N}{|B|} \\sum_{i \\in B}
    \\nabla \\log p(x_i \\mid z),\\qquad
  \\mathbb{E}_B[\\nabla \\log \\tilde p(z)] = \\nabla \\log p(x_{1:N}, z).

References:
  Welling and Teh, `Bayesian Learning via Stochastic Gradient Langevin Dynamics
  <https://www.stats.ox.ac.uk/~teh/research/compstats/WelTeh2011a.pdf>`_, 2011.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from inference.log_joint import constrained_net, total_log_joint
from ppl import MetaBayesianNet

__all__ = [
    "learning_rate_at",
    "log_joint_grad_fn",
    "minibatch_log_joint_fn",
    "normal_like",
    "scaled_log_joint",
]

Position = dict[str, jax.Array]


def minibatch_log_joint_fn(meta_bn: MetaBayesianNet, observed: Mapping[str, Any]
                           ) -> Callable[[Position], jax.Array]:
    """`position -> log p(observed, T(u)) + log|det dT/du|`, on the unconstrained space (nats, to maximise).

    The model's log-joint as `inference.log_joint` builds it for HMC: a latent with a constrained
    support (gamma, beta, half-normal, dirichlet, ...) is given by its unconstrained value
    `u = biject_to(support).inv(z)` and the log-determinant of the Jacobian is added, so a sampler
    moving `u` on R^d samples the right posterior and never leaves the support; a latent with real
    support is given as its value. Each node's log-density is summed over all its axes; a
    `model.log_joint` override (e.g. `scaled_log_joint`) is used instead and must give a scalar.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the observed nodes (a minibatch).

    Returns:
      A function of `{latent name: unconstrained array}` returning an array of shape `[]`.

    Raises:
      ValueError (when the function is called): a `log_joint` override that is not a scalar (sum it
        inside, or use `group_ndims`), or a name both observed and latent.

    Example:
      >>> log_joint = minibatch_log_joint_fn(model, {"y": y_batch})
      >>> log_joint({"rate": jnp.log(2.0)})   # a gamma latent at 2.0, given as log(2.0)
    """
    observed = dict(observed)

    def log_joint(position: Position) -> jax.Array:
        both = sorted(set(position) & set(observed))
        if both:
            raise ValueError(f"{both} are given both as observed and as latent positions")
        bn, _, log_det = constrained_net(meta_bn, observed, position)
        if getattr(meta_bn, "log_joint", None) is not None and jnp.shape(bn.log_joint()) != ():
            raise ValueError(f"SG-MCMC needs a scalar log-joint, but the log_joint override of {meta_bn!r} "
                             f"gives shape {jnp.shape(bn.log_joint())}: sum it inside the override")
        return total_log_joint(meta_bn, bn) + log_det

    return log_joint


def log_joint_grad_fn(meta_bn: MetaBayesianNet, observed: Mapping[str, Any]
                      ) -> Callable[[Position], Position]:
    """`position -> d log p(observed, position) / d position`, a dict like `position`.

    See `minibatch_log_joint_fn` for the arguments and errors.
    """
    return jax.grad(minibatch_log_joint_fn(meta_bn, observed))


def scaled_log_joint(scale: float | jax.Array, names: Iterable[str]) -> Callable[[Any], jax.Array]:
    """A `model.log_joint` override: every stochastic node's log-prob, those in `names` times `scale`.

    With `scale = N / batch_size` and `names` the minibatch likelihood nodes, the gradient of the
    result is an unbiased estimate of the full-data log-joint gradient (see the module docstring).

    Args:
      scale: the factor, e.g. `n_train / batch_size`.
      names: the names of the likelihood nodes to rescale; each must exist in the net.

    Returns:
      `fn(bn) -> array`, summing the terms with broadcasting (`[]` when every term is a scalar).

    Raises:
      KeyError (when called): a name in `names` is not a node of the net.
    """
    names = tuple(names)

    def log_joint(bn) -> jax.Array:
        for name in names:
            bn[name]  # raises a KeyError naming the nodes when missing
        terms = [node.log_prob * scale if name in names else node.log_prob
                 for name, node in bn.stochastic_nodes().items()]
        shape = jnp.broadcast_shapes(*(jnp.shape(t) for t in terms))
        return jnp.asarray(sum(jnp.broadcast_to(t, shape) for t in terms))

    return log_joint


def normal_like(key: jax.Array, tree: Any, std: Any = 1.0) -> Any:
    """Independent Gaussian noise shaped like `tree`, with standard deviation `std`.

    All leaves come from one draw of `jax.random.normal(key, [total size])` (one random-bits kernel
    per step, however many latents), split and reshaped into the tree.

    Args:
      key: a JAX PRNG key.
      tree: a pytree of floating-point arrays (e.g. a position dict).
      std: a scalar or a pytree like `tree` of arrays broadcastable to each leaf.

    Returns:
      A pytree like `tree`: `std * N(0, 1)` in each leaf's dtype.
    """
    leaves, treedef = jax.tree.flatten(tree)
    sizes = [int(np.prod(jnp.shape(leaf))) for leaf in leaves]
    dtype = jnp.result_type(*leaves)
    flat = jax.random.normal(key, (sum(sizes),), dtype)
    pieces = jnp.split(flat, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [flat]
    same_structure = jax.tree.structure(std) == treedef  # type: ignore[operator]  # jaxlib has no PyTreeDef stub
    std_leaves = jax.tree.leaves(std) if same_structure else [std] * len(leaves)
    noise = [(jnp.asarray(s, leaf.dtype) * piece.reshape(jnp.shape(leaf))).astype(leaf.dtype)
             for leaf, piece, s in zip(leaves, pieces, std_leaves, strict=True)]
    return jax.tree.unflatten(treedef, noise)


def learning_rate_at(learning_rate: float | Callable[[jax.Array], jax.Array], count: jax.Array) -> jax.Array:
    """The learning rate at step `count`: a constant, or an optax schedule `count -> rate`.

    Args:
      learning_rate: a positive float, or a callable (e.g. `optax.polynomial_schedule(...)`).
      count: the number of steps taken so far, an int array of shape `[]`.

    Returns:
      A float array of shape `[]`.
    """
    rate = learning_rate(count) if callable(learning_rate) else learning_rate
    return jnp.asarray(rate, jnp.result_type(float))
