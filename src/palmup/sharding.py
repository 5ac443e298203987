"""Data parallelism with jax.sharding: one Mesh axis "data" over every device of every host.

Env states, observations and the replay buffer's (env, time) storage are split over "data" along
their env axis; sampled batches along their batch axis; everything else (networks, optimisers,
counters, RNG) is replicated. The fused step is jitted with these shardings and XLA's SPMD
partitioner inserts the collectives: gradients of the global-batch mean are all-reduced, and the
NT-Xent similarity matrix spans the global batch (negatives come from every device). The
computation is the same program whatever the device count, so 1 and 8 devices agree (tested).

A population of runs in one program (palmup.pretrain.jit_pretrain's members) gets a second mesh
axis "members" in front: the devices form gcd(members, devices) groups, each holding whole members,
and every member's per-env leaves are split over "data" within its group.
"""
from __future__ import annotations

import contextlib
import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from palmup.errors import UserError

AXIS = "data"
MEMBERS = "members"  # a population's mesh axis (make_mesh(members=...))
# The pytree paths (from the root of palmup.pretrain.PretrainState) of the leaves that carry the env
# axis first: the env states, the observations and the replay's storage.
PER_ENV = (("env_state",), ("obs",), ("buffer", "experience"))


# Where jax.distributed.initialize() finds the processes itself (cluster environment variables).
_CLUSTERS = {"SLURM": "SLURM_NTASKS", "Open MPI": "OMPI_COMM_WORLD_SIZE"}


def distributed_settings(env=None) -> dict | None:
  """How this process joins a multi-process run, from the environment; None for a single process.

  Explicit: JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES, JAX_PROCESS_ID
  (JAX reads only the first; palmup reads the other two). Auto-detected by JAX: SLURM and Open MPI
  jobs of several tasks, and Cloud TPU pods (TPU_WORKER_HOSTNAMES lists several workers); or
  PALMUP_DISTRIBUTED=1 wherever jax.distributed.initialize() can detect the cluster itself."""
  env = os.environ if env is None else env
  address, count, index = (env.get(k) for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"))
  if count is not None or index is not None:
    if not (address and count and index) or not (count.isdigit() and index.isdigit() and int(index) < int(count)):
      raise UserError(f"JAX_COORDINATOR_ADDRESS={address!r}, JAX_NUM_PROCESSES={count!r}, JAX_PROCESS_ID={index!r} "
                      "is an incomplete or invalid multi-process setting; valid: all three, with "
                      "0 <= JAX_PROCESS_ID < JAX_NUM_PROCESSES (or none of them for one process)")
    return (dict(coordinator_address=address, num_processes=int(count), process_id=int(index))
            if int(count) > 1 else None)
  several = lambda k: env.get(k, "1").isdigit() and int(env.get(k, "1")) > 1
  if (env.get("PALMUP_DISTRIBUTED") == "1" or address or any(several(k) for k in _CLUSTERS.values())
      or "," in env.get("TPU_WORKER_HOSTNAMES", "")):
    return {}  # jax.distributed.initialize() detects the rest
  return None


def local_processes_env(processes: int, devices: int) -> list[dict[str, str]]:
  """The environment of each of `processes` processes on this machine, `devices` forced CPU devices
  each, joined (when several) through distributed_settings' variables on a free localhost port: how
  tests and benchmarks stand in for a pod's hosts."""
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
  envs = [dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu") for _ in range(processes)]
  if processes > 1:
    for index, env in enumerate(envs):
      env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES=str(processes),
                 JAX_PROCESS_ID=str(index))
  return envs


def initialize_distributed(env=None) -> bool:
  """Joins a multi-process run (see distributed_settings) before any JAX computation; on CPU with
  JAX's gloo collectives. Called by the CLI for every command. -> whether this is a multi-process run."""
  settings = distributed_settings(env)
  if settings is None:
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only CPU computations use it
  jax.distributed.initialize(**settings)
  return True


def make_mesh(devices=None, members: int | None = None) -> Mesh:
  """All devices (default: jax.devices()) along "data"; for a population of `members` runs, a
  ("members", "data") mesh of gcd(members, devices) device groups, each holding whole members."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  if members is None:
    return Mesh(devices, (AXIS,))
  return Mesh(devices.reshape(math.gcd(members, devices.size), -1), (MEMBERS, AXIS))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_replicated(tree, mesh: Mesh):
  """A pytree of host values placed whole on every device of the mesh, as global arrays (every
  process of a multi-process run holds the same values and places its own devices' copies)."""
  rep = replicated(mesh)

  def put(x):
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, rep, lambda index: host[index])
  return jax.tree.map(put, tree)


def state_shardings(abstract_state, mesh: Mesh):
  """Shardings for a PretrainState of arrays (or ShapeDtypeStructs): the leaves under a PER_ENV path
  split over "data" along axis 0, all others replicated (a leaf is matched by its path from the
  root, never by a name appearing deeper, such as a parameter called "obs")."""
  def spec(path, leaf):
    names = tuple(getattr(k, "name", getattr(k, "key", None)) for k in path)
    per_env = leaf.ndim > 0 and any(names[:len(prefix)] == prefix for prefix in PER_ENV)
    return batch_sharding(mesh) if per_env else replicated(mesh)
  return jax.tree_util.tree_map_with_path(spec, abstract_state)


def behind_member_axis(shardings):
  """A population's shardings (pretrain.jit_pretrain's members): each member's, behind a leading
  member axis split over the mesh's "members" axis."""
  return jax.tree.map(lambda s: NamedSharding(s.mesh, P(MEMBERS, *s.spec)), shardings)


def member_shardings(shardings, member: int, members: int):
  """A population's shardings (behind_member_axis) for member `member` alone: on its own device
  group's devices (the mesh's row that holds it), split over "data" as the population splits it, so
  restoring a member puts each byte where the population's state keeps it."""
  def one(s: NamedSharding) -> NamedSharding:
    groups = s.mesh.devices.shape[0]
    row = member // (members // groups)
    return NamedSharding(Mesh(s.mesh.devices[row], s.mesh.axis_names[1:]), P(*s.spec[1:]))
  return jax.tree.map(one, shardings)


def stack_members(states: list, shardings):
  """The population's state from its members' states, each on its own device group
  (member_shardings), which it consumes: leaf by leaf, every device's shard of member i becomes its
  shard of row i of the stacked array and the member's leaf is deleted, so no member is copied to
  another group's devices (jnp.stack would gather them all) and a device holds at most its share of
  the state plus one leaf's twice."""
  def leaf(s: NamedSharding, *xs):
    pieces = [shard.data[None] for x in xs for shard in x.addressable_shards]
    stacked = jax.make_array_from_single_device_arrays((len(xs),) + xs[0].shape, s, pieces)
    for x in xs:
      x.delete()
    return stacked
  return jax.tree.map(leaf, shardings, *states)


def shard_batch(x, mesh: Mesh):
  """Inside a jitted function: splits the leading axis of every leaf of x over "data"."""
  return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, batch_sharding(mesh)), x)


def to_host(tree):
  """Numpy copies of a pytree's arrays on every process: replicated arrays from this process's own
  copy, arrays split across processes gathered (a collective: every process must call it)."""
  from jax.experimental import multihost_utils

  def get(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return np.asarray(x)
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return jax.tree.map(get, tree)


def sync(name: str):
  """Waits until every process reaches the barrier `name` (a no-op with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
  """Whether `flag` is set on any process (a collective with several processes: all must call it)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


_MESSAGE_BYTES = 1024


@contextlib.contextmanager
def together(what: str):
  """Runs a block that may fail on some processes only (a generator or dataset missing on one host)
  and holds no collective; then the processes compare (one all-gather). If any failed, every process
  stops: a failed one with its own error, the others with a UserError naming the first failed
  process and its message, so none waits alone in the next collective. One process: a no-op."""
  error = None
  try:
    yield
  except Exception as e:  # re-raised below, after the others have heard of it
    error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    text = f"{type(error).__name__}: {error}" if error is not None and not isinstance(error, UserError) else str(error)
    encoded = np.zeros(_MESSAGE_BYTES + 1, np.uint8)
    if error is not None:
      raw = text.encode()[:_MESSAGE_BYTES]
      encoded[0], encoded[1:1 + len(raw)] = 1, np.frombuffer(raw, np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(encoded))  # [processes, 1 + bytes]
    failed = np.flatnonzero(gathered[:, 0])
    if error is None and failed.size:
      first = int(failed[0])
      message = bytes(gathered[first, 1:]).rstrip(b"\0").decode(errors="replace")
      raise UserError(f"process {first} of {jax.process_count()} failed while {what}: {message}")
  if error is not None:
    raise error


def is_primary() -> bool:
  """Whether this process writes the run's single files (logs, pictures, config, encoder, probe)."""
  return jax.process_index() == 0
