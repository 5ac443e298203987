"""Run on 4 forced CPU devices (tests/test_sharding.py): the per-device bytes of a population of 4
tiny runs while running, and at the peak of restoring its members (placed as their checkpoints are
restored: the old way, replicated over every device group, and the new, sharding.member_shardings)
and stacking them (sharding.stack_members). Prints one JSON line."""
import json

import jax
import jax.numpy as jnp
import numpy as np

from palmup import configs, sharding
from palmup.pretrain import jit_pretrain, make_world, population_world
from palmup.pretrain_job import population_members


def per_device_bytes(arrays) -> int:
  """The most bytes any device holds among these arrays' live shards (each buffer once)."""
  seen, out = set(), {}
  for x in arrays:
    if x.is_deleted():
      continue
    for shard in x.addressable_shards:
      key = (shard.device, shard.data.unsafe_buffer_pointer())
      if key not in seen:
        seen.add(key)
        out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
  return max(out.values(), default=0)


def main():
  runs = [configs.load("pretrain_tiny", **{"env.ema": ema, "seed": i}) for i, ema in enumerate((0.3, 0.5, 0.7, 0.9))]
  members = len(runs)
  mesh = sharding.make_mesh(members=members)
  world = population_world(make_world(runs[0]), population_members(runs))
  init, _, shardings = jit_pretrain(runs[0], world, mesh, members)
  shapes = jax.eval_shape(init, world, jax.ShapeDtypeStruct((members, 2), jnp.uint32))
  rng = np.random.default_rng(0)
  host = jax.tree.map(lambda x: rng.integers(0, 100, x.shape).astype(x.dtype), shapes)
  state = jax.device_put(host, shardings)
  running = per_device_bytes(jax.tree.leaves(state))
  replicated = jax.tree.map(lambda s: jax.sharding.NamedSharding(s.mesh, jax.sharding.PartitionSpec(*s.spec[1:])),
                            shardings)
  old = [jax.device_put(jax.tree.map(lambda x: x[i], host), replicated) for i in range(members)]
  old_peak = per_device_bytes([x for m in old for x in jax.tree.leaves(m)])
  del old
  restored = [jax.device_put(jax.tree.map(lambda x: x[i], host), sharding.member_shardings(shardings, i, members))
              for i in range(members)]
  peak, made = [per_device_bytes([x for m in restored for x in jax.tree.leaves(m)])], []
  make = jax.make_array_from_single_device_arrays

  def tracked(*args, **kwargs):
    out = make(*args, **kwargs)
    made.append(out)
    peak.append(per_device_bytes(made + [x for m in restored for x in jax.tree.leaves(m)]))
    return out
  jax.make_array_from_single_device_arrays = tracked
  stacked = sharding.stack_members(restored, shardings)
  same = all(np.array_equal(np.asarray(a), b) and a.sharding == s for a, b, s in
             zip(jax.tree.leaves(stacked), jax.tree.leaves(host), jax.tree.leaves(shardings)))
  print(json.dumps({"running": running, "old_restoring": old_peak, "restoring": max(peak), "same": same}))


if __name__ == "__main__":
  main()
