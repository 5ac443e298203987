"""Data parallelism with jax.sharding: one Mesh axis "data" over every device of every host.

Env states, observations and the replay buffer's (env, time) storage are split over "data" along
their env axis; sampled batches along their batch axis; everything else (networks, optimisers,
counters, RNG) is replicated. The fused step is jitted with these shardings and XLA's SPMD
partitioner inserts the collectives: gradients of the global-batch mean are all-reduced, and the
NT-Xent similarity matrix spans the global batch (negatives come from every device). The
computation is the same program whatever the device count, so 1 and 8 devices agree (tested).
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
# Leaves whose pytree path contains one of these names carry the env axis first.
_PER_ENV = ("env_state", "obs", "experience")


def maybe_initialize_distributed():
  """Joins a multi-host run when the coordinator is set (JAX_COORDINATOR_ADDRESS, or a cluster
  jax.distributed auto-detects: SLURM, Cloud TPU pods). A no-op on one host."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("PALMUP_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def state_shardings(abstract_state, mesh: Mesh):
  """Shardings for a pytree of arrays (or ShapeDtypeStructs): per-env leaves split over "data"
  along axis 0, all others replicated."""
  def spec(path, leaf):
    per_env = any(name in jax.tree_util.keystr(path) for name in _PER_ENV) and leaf.ndim > 0
    return batch_sharding(mesh) if per_env else replicated(mesh)
  return jax.tree_util.tree_map_with_path(spec, abstract_state)


def shard_batch(x, mesh: Mesh):
  """Inside a jitted function: splits the leading axis of every leaf of x over "data"."""
  return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, batch_sharding(mesh)), x)
