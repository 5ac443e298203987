"""Representation-learning losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def ntxent(a: jax.Array, b: jax.Array, temperature: float, valid: jax.Array | None = None,
           group: int = 0) -> jax.Array:
  """SimCLR's NT-Xent loss for positive pairs (a_i, b_i); a, b: [N, D] -> scalar.

  Embeddings are L2-normalised; logits are cosine similarities / temperature. Each of the 2N
  samples is an anchor whose positive is its partner and whose negatives are the other 2N - 2
  samples (itself excluded): the loss is the mean over anchors of the cross-entropy of the partner
  among the 2N - 1 others. `valid` [N] bool drops pairs as anchors (e.g. pairs that cross an
  episode boundary); their samples still serve as negatives. Called under jit on arrays sharded
  over a mesh, the similarity matrix spans the global batch, so negatives come from all devices.
  group > 0: the negatives are those of the anchor's group of `group` consecutive pairs only (N a
  multiple of it), a scope that does not grow with the mesh; on a mesh whose per-device batch is a
  multiple of `group`, a group's similarities never leave its device.
  """
  n = a.shape[0]
  g = group or n
  if n % g:
    raise ValueError(f"ntxent's group {group} must divide the batch of {n} pairs")
  a, b = a.reshape(n // g, g, -1), b.reshape(n // g, g, -1)  # [groups, g, D]
  x = jnp.concatenate([a, b], axis=1)
  x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-12))
  logits = jnp.einsum("gid,gjd->gij", x, x) / temperature
  logits = jnp.where(jnp.eye(2 * g, dtype=bool), -jnp.inf, logits)
  partner = jnp.concatenate([jnp.arange(g, 2 * g), jnp.arange(g)])
  log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), partner[None, :, None], axis=-1)[..., 0]
  weight = jnp.ones((n // g, 2 * g)) if valid is None else jnp.concatenate(
      [valid.reshape(n // g, g)] * 2, axis=1).astype(jnp.float32)
  return -jnp.sum(weight * log_prob) / jnp.maximum(jnp.sum(weight), 1.0)
