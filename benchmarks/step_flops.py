"""flops: what one pretraining step costs by part, in FLOPs and bytes, for any chip: XLA's cost
analysis of each part compiled at the config's full size on abstract inputs (never run).

    python benchmarks/step_flops.py [--quick] [--config pretrain_fashion_mnist,pretrain_accelerator,pretrain_cifar10_stylegan2ada]

Parts (pretrain.step_parts): act (the actor on the envs' detached features, or uniform), env_step
(every env's transition and decode), learn (the SimCLR update) and agent_update (APT's critic and
actor update, apt only), each lowered alone, on one device, with inputs shaped by jax.eval_shape of
the loop's state. A config whose generator is not on disk (the accelerator configs' imported worlds)
gets the random-weight generator of the same kind and shape its `stand_in` key names
(palmup.generators.STAND_INS): the eye DCGAN's for pretrain_accelerator.py, cifar10.pkl's for
pretrain_cifar10_stylegan2ada.py. FLOPs are a count of
the program, not a measurement of time; `bytes accessed` is XLA's estimate of memory traffic.
Figures: agent_update / learn and env_step / learn FLOPs per config, and agent_update / learn with
apt.nstep_reward=sum (the n-step sum of the rewards of frames 1..n, which the update encodes) instead
of the default "first" (URLB's reward of frame 0: the update encodes frame n only). Target (the
explorer's cost): agent_update FLOPs <= 0.25 x learn FLOPs, at the configs' defaults.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

import benchlib

SIZES = dict(config="pretrain_fashion_mnist,pretrain_accelerator,pretrain_cifar10_stylegan2ada")
QUICK = dict(config="pretrain_tiny")
def _generator_override(config: str) -> tuple[tuple[str, object], ...]:
  """(('generator', path),) of the config's random-weight stand-in (its `stand_in` key,
  palmup.generators.STAND_INS) when its own generator is not on disk."""
  from palmup import configs, generators
  c = configs.load(config)
  if generators.exists(c.generator) or not c.stand_in:
    return ()
  gen = generators.stand_in(c.stand_in)
  directory = Path(tempfile.mkdtemp(prefix="palmup_stand_in_")) / "generator"
  generators.save(directory, gen, gen.init(jax.random.PRNGKey(0)))
  return (("generator", str(directory)),)


def part_costs(setup: benchlib.Pretrain, parts=("act", "env_step", "learn", "agent_update")) -> dict[str, dict[str, float]]:
  """{part: {"gflop", "gb_accessed"}} of the parts (act, env_step, learn, agent_update), from abstract inputs."""
  state = jax.eval_shape(setup.init, jax.random.PRNGKey(0))
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  action = jax.eval_shape(setup.parts["act"], state, key)
  seq = jax.eval_shape(setup.parts["sample"], state.buffer, key)
  inputs = {"act": (state, key), "env_step": (state, action, key), "learn": (state.learner, seq, key)}
  if state.agent is not None:
    encoded = jax.eval_shape(setup.parts["learn"], state.learner, seq, key)[3]
    inputs["agent_update"] = (state.agent, state.learner.params, seq, key, state.step, encoded)
  costs = {}
  for name, args in ((n, a) for n, a in inputs.items() if n in parts):
    analysis = jax.jit(setup.parts[name]).lower(*args).compile().cost_analysis()
    costs[name] = {"gflop": analysis["flops"] / 1e9, "gb_accessed": analysis.get("bytes accessed", 0.0) / 1e9}
  return costs


def run(config: str) -> dict:
  """config: comma-separated config names (configs/) or paths; figures are named by each one's stem."""
  figures, targets, details = {}, {}, {}
  for config in config.split(","):
    tag = Path(config).stem
    generator = _generator_override(config)
    setup = benchlib.pretrain_setup.__wrapped__(config, generator)
    costs = part_costs(setup)
    c = setup.config
    details[tag] = {"num_envs": c.num_envs, "batch_size": c.replay.batch_size, "encoder": c.learner.encoder.name,
                       "obs_size": c.obs_size, "generator": setup.env.generator.kind, "parts": costs,
                       "step_gflop": sum(p["gflop"] for p in costs.values())}
    learn = costs["learn"]["gflop"]
    figures[f"env_step_over_learn_flops[{tag}]"] = costs["env_step"]["gflop"] / learn
    if "agent_update" in costs:
      name = f"agent_update_over_learn_flops[{tag}]"
      figures[name], targets[name] = costs["agent_update"]["gflop"] / learn, ("<=", 0.25)
      summed = benchlib.pretrain_setup.__wrapped__(config, generator + (("apt.nstep_reward", "sum"),))
      update = part_costs(summed, ("agent_update",))["agent_update"]
      details[tag]["agent_update_nstep_reward_sum"] = update
      figures[f"agent_update_over_learn_flops[{tag}, nstep_reward=sum]"] = update["gflop"] / learn
  return {"figures": figures, "targets": targets, "details": details}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
