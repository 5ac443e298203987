"""Representation-learning losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def ntxent(a: jax.Array, b: jax.Array, temperature: float, valid: jax.Array | None = None) -> jax.Array:
  """SimCLR's NT-Xent loss for positive pairs (a_i, b_i); a, b: [N, D] -> scalar.

  Embeddings are L2-normalised; logits are cosine similarities / temperature. Each of the 2N
  samples is an anchor whose positive is its partner and whose negatives are the other 2N - 2
  samples (itself excluded): the loss is the mean over anchors of the cross-entropy of the partner
  among the 2N - 1 others. `valid` [N] bool drops pairs as anchors (e.g. pairs that cross an
  episode boundary); their samples still serve as negatives. Called under jit on arrays sharded
  over a mesh, the similarity matrix spans the global batch, so negatives come from all devices.
  """
  n = a.shape[0]
  x = jnp.concatenate([a, b], axis=0)
  x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-12))
  logits = (x @ x.T) / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  partner = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), partner[:, None], axis=-1)[:, 0]
  weight = jnp.ones(2 * n) if valid is None else jnp.tile(valid.astype(jnp.float32), 2)
  return -jnp.sum(weight * log_prob) / jnp.maximum(jnp.sum(weight), 1.0)
