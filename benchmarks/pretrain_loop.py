"""The fused pretraining loop against its parts, measured in one process.

    python benchmarks/pretrain_loop.py [--config configs/pretrain_fashion_mnist.py] [--steps 10]
                                       [--repeats 3] [--json out.json] [--config.x=y ...]

Prints:
- frames/s of the fused loop (one jitted chunk of `steps` steps; num_envs frames per step);
- the time per step of each part jitted alone on the same sizes: env step (act-free: vmapped
  env.step), replay add + sample, learner step (views + NT-Xent update), agent step (act on the
  envs' observations + feature extraction of the sampled sequences + DDPG update); and the loop's
  overhead = loop time per step / sum of the parts (target <= 1.2);
- bytes per stored transition for pixels and latents, and the sample throughput of each;
- the learner step's achieved FLOP/s (XLA cost analysis flops / measured time) as a fraction of a
  2048 x 2048 float32 matmul's FLOP/s measured here.
Each figure is the median of `repeats` timed calls after a warm-up call.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import jax


def _median_time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # compile + warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _matmul_flops_per_s(repeats: int, n: int = 2048) -> float:
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
  return 2 * n ** 3 / _median_time(jax.jit(lambda a: a @ a), a, repeats=repeats)


def measure(config, repeats: int) -> dict:
  from palmup import generators, pretrain, sharding
  from palmup.env import LatentEnv, params_from_config
  from palmup.learner import contrastive_views
  from palmup.replay import Replay

  pretrain.validate(config)
  gen, gen_params = generators.load(config.generator)
  env = LatentEnv(gen, gen_params, obs_size=config.obs_size)
  env_params = params_from_config(config)
  learner, agent, replay = pretrain.build(config, env)
  init, chunk, _ = pretrain.jit_pretrain(config, env, sharding.make_mesh())
  state = init(jax.random.PRNGKey(0))
  steps = config.train.chunk_steps

  jax.block_until_ready(chunk(state))  # compile + warm up (donates state)
  state = init(jax.random.PRNGKey(0))
  loop_times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics, _ = chunk(state)
    jax.block_until_ready(metrics)
    loop_times.append(time.perf_counter() - start)
  loop = statistics.median(loop_times) / steps

  n, key = config.num_envs, jax.random.PRNGKey(1)
  action = jax.random.uniform(key, (n, env.latent_dim), minval=-1)
  keys = jax.random.split(key, n)
  env_step = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))
  parts = {"env_step": _median_time(env_step, keys, state.env_state, action, env_params, repeats=repeats)}

  item = replay.item(state.obs, state.env_state, action, state.env_state.t == 0)
  add_sample = jax.jit(lambda b, item, k: replay.sample(replay.add(b, item), k))
  parts["replay_add_sample"] = _median_time(add_sample, state.buffer, item, key, repeats=repeats)

  seq = jax.jit(replay.sample)(state.buffer, key)
  lc = config.learner

  def learner_step(ls, seq, k):
    a, b, valid = contrastive_views(k, seq.obs, seq.first, lc.pair_offset, lc.augment, lc.crop_min, lc.jitter)
    return learner.update(ls, a, b, seq.label[:, 0], valid)

  learner_jit = jax.jit(learner_step)
  parts["learner_step"] = _median_time(learner_jit, state.learner, seq, key, repeats=repeats)
  learner_flops = learner_jit.lower(state.learner, seq, key).compile().cost_analysis()["flops"]

  if agent is not None:
    frames = seq.obs[:, :config.agent.nstep + 1]

    def agent_step(ag, params, obs, frames, seq, k):
      act = agent.act(ag, learner.features(params, obs), k, 0)
      feats = learner.features(params, frames.reshape((-1,) + frames.shape[2:]))
      ag, m = agent.update(ag, feats.reshape(frames.shape[0], frames.shape[1], -1), seq.action[:, 0],
                           seq.first[:, :frames.shape[1]], k, 0)
      return act, ag, m

    parts["agent_step"] = _median_time(jax.jit(agent_step), state.agent, state.learner.params, state.obs,
                                       frames, seq, key, repeats=repeats)
  matmul = _matmul_flops_per_s(repeats)
  storage = {}
  for kind in ("pixels", "latents"):
    r = Replay(env, n, config.replay.capacity, config.replay.batch_size, replay.sequence_length, kind)
    buffer = jax.jit(r.init)()
    for _ in range(replay.sequence_length + 1):
      buffer = jax.jit(r.add)(buffer, r.item(state.obs, state.env_state, action, state.env_state.t == 0))
    t = _median_time(jax.jit(r.sample), buffer, key, repeats=repeats)
    storage[kind] = {"bytes_per_transition": r.bytes_per_transition(),
                     "sampled_frames_per_s": config.replay.batch_size * r.sequence_length / t}
  return {
      "config": {"explorer": config.explorer, "num_envs": n, "batch_size": config.replay.batch_size,
                 "obs_size": config.obs_size, "encoder": config.learner.encoder.name,
                 "storage": config.replay.storage, "chunk_steps": steps, "devices": jax.device_count()},
      "loop_seconds_per_step": loop, "frames_per_second": n / loop,
      "parts_seconds_per_step": parts, "loop_overhead": loop / sum(parts.values()),
      "learner_flops_per_step": learner_flops,
      "learner_flops_per_s": learner_flops / parts["learner_step"], "matmul_flops_per_s": matmul,
      "learner_fraction_of_matmul": learner_flops / parts["learner_step"] / matmul,
      "replay": storage,
  }


def main(argv):
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file("config", "configs/pretrain_fashion_mnist.py", "pretraining config")
  flags.DEFINE_integer("steps", 10, "steps per timed chunk")
  flags.DEFINE_integer("repeats", 3, "timed calls per figure (median)")
  flags.DEFINE_string("json", None, "also write the figures here")
  flags.FLAGS(argv)
  config = flags.FLAGS.config
  config.train.chunk_steps = flags.FLAGS.steps
  out = measure(config, flags.FLAGS.repeats)
  parts = out["parts_seconds_per_step"]
  print(f"fused loop: {out['frames_per_second']:.1f} frames/s ({1e3 * out['loop_seconds_per_step']:.1f} ms/step, "
        f"{out['config']['num_envs']} envs, batch {out['config']['batch_size']})")
  for name, t in parts.items():
    print(f"  {name:<18} {1e3 * t:8.1f} ms")
  print(f"  {'sum of parts':<18} {1e3 * sum(parts.values()):8.1f} ms   loop overhead = {out['loop_overhead']:.2f}")
  print(f"learner: {out['learner_flops_per_s'] / 1e9:.1f} GFLOP/s = {out['learner_fraction_of_matmul']:.2f} "
        f"x matmul ({out['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s)")
  for kind, r in out["replay"].items():
    print(f"replay {kind:<8} {r['bytes_per_transition']:6d} B/transition, "
          f"{r['sampled_frames_per_s']:.0f} sampled frames/s")
  if flags.FLAGS.json:
    with open(flags.FLAGS.json, "w") as f:
      json.dump(out, f, indent=2)


if __name__ == "__main__":
  main(sys.argv)
