"""APT's particle-based entropy reward (Liu & Abbeel, 2021), with URLB's semantics (utils.PBE).

Variants (say which one a config uses):
  plain (default):        average of the k nearest distances, then log(1 + .)
  URLB's APT:             running_mean=RunningMean.init(), clip=1e-4 (k = 12 in URLB)
  k-th neighbour only:    average=False
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class RunningMean:
  """A scalar running mean of kNN distances, count-weighted (URLB's RMS.M and its count)."""
  mean: jax.Array
  count: jax.Array

  @classmethod
  def init(cls) -> "RunningMean":
    return cls(jnp.zeros(()), jnp.full((), 1e-4))  # URLB's RMS starts at M=0, n=1e-4

  def update(self, values: jax.Array) -> "RunningMean":
    n = values.size
    total = self.count + n
    return RunningMean(self.mean + (jnp.mean(values) - self.mean) * n / total, total)


# The distance expansion's matmul in full float32 on every backend: at DEFAULT precision a TPU
# multiplies float32 in bfloat16 passes and a GPU in TF32 (8 and 10 mantissa bits), and the
# cancellation in ||x||^2 - 2 x.y + ||y||^2 leaves errors of the order of the distances themselves.
HIGHEST = jax.lax.Precision.HIGHEST


def pairwise_distances(x: jax.Array) -> jax.Array:
  """Euclidean distances [B, B] between rows of x [B, D], as ||x||^2 - 2 x x^T + ||x||^2 (one
  float32 matmul at HIGHEST precision) floored at 0, with an exact 0 on the diagonal (the expansion
  leaves ~1e-3 after sqrt)."""
  sq = jnp.sum(jnp.square(x), axis=-1)
  d2 = sq[:, None] - 2.0 * jnp.matmul(x, x.T, precision=HIGHEST) + sq[None, :]
  d2 = jnp.where(jnp.eye(x.shape[0], dtype=bool), 0.0, jnp.maximum(d2, 0.0))
  return jnp.sqrt(d2)


def kth_distance(candidates: jax.Array, reference: jax.Array, k: int) -> jax.Array:
  """candidates [..., D], reference [M, D] -> the distance from each candidate to its k-th nearest
  reference row [...] (the same expansion as pairwise_distances, floored at 0)."""
  sq = lambda x: jnp.sum(jnp.square(x), -1)
  d2 = sq(candidates)[..., None] - 2.0 * jnp.matmul(candidates, reference.T, precision=HIGHEST) + sq(reference)
  return jnp.sqrt(jnp.maximum(-jax.lax.top_k(-d2, k)[0][..., -1], 0.0))


def particle_reward(features: jax.Array, k: int, *, average: bool = True, clip: float = 0.0,
                    running_mean: RunningMean | None = None) -> jax.Array | tuple[jax.Array, RunningMean]:
  """Intrinsic reward [..., B] for features [..., B, D]: each batch of B points among themselves
  (treated as constants: no gradient flows).

  1. distances to all points of the batch, the point itself included (distance 0);
  2. the k smallest per row;
  3. if `running_mean` is given: update it once with the kept distances of every batch (the k-th
     only when average=False), then divide them by it (a mean of 0, when every kept distance is 0,
     leaves them 0);
  4. max(d - clip, 0);
  5. mean over the k (average=True) or the k-th distance alone;
  6. log(1 + .).
  Returns the reward, or (reward, updated running mean) when `running_mean` is given.
  """
  if not 1 <= k <= features.shape[-2]:
    raise ValueError(f"k must be in [1, batch size {features.shape[-2]}], got {k}")
  distances = jnp.vectorize(pairwise_distances, signature="(b,d)->(b,b)")
  dist = distances(jax.lax.stop_gradient(features).astype(jnp.float32))
  knn = -jax.lax.top_k(-dist, k)[0]  # [..., B, k], ascending
  if not average:
    knn = knn[..., -1:]
  new_mean = None
  if running_mean is not None:
    new_mean = running_mean.update(knn)
    knn = knn / jnp.where(new_mean.mean > 0, new_mean.mean, 1.0)
  reward = jnp.log1p(jnp.mean(jnp.maximum(knn - clip, 0.0), axis=-1))
  return reward if running_mean is None else (reward, new_mean)


def knn_entropy(x: jax.Array, k: int = 3) -> jax.Array:
  """Kozachenko-Leonenko entropy estimate (nats) of the distribution of the rows of x [N, D]:
  psi(N) - psi(k) + log V_D + D * mean(log r_k), r_k the distance to the k-th other point and V_D
  the unit ball's volume. A coverage statistic for logging (not a reward)."""
  n, d = x.shape
  if not 1 <= k < n:
    raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
  r = -jax.lax.top_k(-pairwise_distances(x.astype(jnp.float32)), k + 1)[0][:, -1]  # skip self
  log_ball = 0.5 * d * jnp.log(jnp.pi) - jax.scipy.special.gammaln(0.5 * d + 1.0)
  digamma = jax.scipy.special.digamma
  return digamma(float(n)) - digamma(float(k)) + log_ball + d * jnp.mean(jnp.log(jnp.maximum(r, 1e-12)))
