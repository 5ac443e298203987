"""Runs two chunks of tiny pretraining with the explorer argv[2] (apt or gradient) on every visible
device and saves metrics and networks to the .npz named by argv[1] (launched by test_sharding with 1
and 8 forced CPU devices)."""
import sys

import jax
import numpy as np

from conftest import tiny_generator
from palmup.env import LatentEnv
from test_pretrain import _run_chunks, tiny_config

if __name__ == "__main__":
  env = LatentEnv(*tiny_generator(), obs_size=8)
  config = tiny_config(explorer=sys.argv[2], **{"learner.augment": "add"})
  _, state, rows, _ = _run_chunks(config, env, 2)
  shards = {len(x.sharding.device_set) for x in jax.tree.leaves(state.env_state)}
  leaves = jax.tree.leaves(jax.device_get((state.learner.params, state.agent.actor, getattr(state.agent, "critic", None))))
  out = {f"p{i}": x for i, x in enumerate(leaves)}
  out.update({f"m{i}_{k}": v for i, row in enumerate(rows) for k, v in row.items()})
  np.savez(sys.argv[1], devices=jax.device_count(), env_shards=max(shards), **out)
