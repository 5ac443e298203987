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


def _sqrt_safe(d2: jax.Array) -> jax.Array:
  """sqrt(d2) of squared distances floored at 0, with gradient 0 (not inf, which times 0 gives NaN)
  where d2 is 0: a point's distance to itself is differentiable."""
  positive = d2 > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)


def cross_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """Euclidean distances [N, M] between rows of x [N, D] and y [M, D], as ||x||^2 - 2 x y^T + ||y||^2
  (one float32 matmul at HIGHEST precision) floored at 0; differentiable everywhere."""
  sq = lambda a: jnp.sum(jnp.square(a), axis=-1)
  d2 = sq(x)[:, None] - 2.0 * jnp.matmul(x, y.T, precision=HIGHEST) + sq(y)[None, :]
  return _sqrt_safe(jnp.maximum(d2, 0.0))


def pairwise_distances(x: jax.Array) -> jax.Array:
  """Euclidean distances [B, B] between rows of x [B, D] (cross_distances(x, x)) with an exact 0 on
  the diagonal (the expansion leaves ~1e-3 after sqrt)."""
  return jnp.where(jnp.eye(x.shape[0], dtype=bool), 0.0, cross_distances(x, x))


def kth_distance(candidates: jax.Array, reference: jax.Array, k: int) -> jax.Array:
  """candidates [..., D], reference [M, D] -> the distance from each candidate to its k-th nearest
  reference row [...] (cross_distances' expansion)."""
  flat = candidates.reshape(-1, candidates.shape[-1])
  d = cross_distances(flat, reference).reshape(candidates.shape[:-1] + (reference.shape[0],))
  return -jax.lax.top_k(-d, k)[0][..., -1]


def particle_reward(features: jax.Array, k: int, *, average: bool = True, clip: float = 0.0,
                    running_mean: RunningMean | None = None,
                    reference: jax.Array | None = None) -> jax.Array | tuple[jax.Array, RunningMean]:
  """Intrinsic reward [..., B] for features [..., B, D]: each batch of B points among themselves, or,
  given `reference` [..., M, D], each point among the reference's M points.

  1. distances to all points of the batch, the point itself included (distance 0), or to the
     reference's points;
  2. the k smallest per row;
  3. if `running_mean` is given: update it once with the kept distances of every batch (the k-th
     only when average=False), then divide them by it (a mean of 0, when every kept distance is 0,
     leaves them 0);
  4. max(d - clip, 0);
  5. mean over the k (average=True) or the k-th distance alone;
  6. log(1 + .).
  Differentiable in features and reference (a point's zero distance to itself has gradient 0; the
  running mean is a constant): the APT agent passes detached features, the gradient explorer
  (palmup.gradient_explorer) differentiates through it. Returns the reward, or (reward, updated
  running mean) when `running_mean` is given.
  """
  points = features.shape[-2] if reference is None else reference.shape[-2]
  if not 1 <= k <= points:
    raise ValueError(f"k must be in [1, {'batch' if reference is None else 'reference'} size {points}], got {k}")
  x = features.astype(jnp.float32)
  if reference is None:
    dist = jnp.vectorize(pairwise_distances, signature="(b,d)->(b,b)")(x)
  else:
    dist = jnp.vectorize(cross_distances, signature="(b,d),(m,d)->(b,m)")(x, reference.astype(jnp.float32))
  knn = -jax.lax.top_k(-dist, k)[0]  # [..., B, k], ascending
  if not average:
    knn = knn[..., -1:]
  new_mean = None
  if running_mean is not None:
    new_mean = running_mean.update(jax.lax.stop_gradient(knn))
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
