"""What the benchmarks share: timing, compiled calls, a compilation counter, the pretraining setup
and one command line.

A benchmark module defines `run(**sizes) -> {"figures", "targets", "details"}`, its full sizes
`SIZES` and smoke-test sizes `QUICK` (seconds), and ends with `benchlib.main(sys.modules[__name__])`:

    python benchmarks/<module>.py [--quick] [--<size> value ...]

figures: ratios against a limit or a reference measured in the same process; targets: figure ->
(op, bound), e.g. ("<=", 1.2), for the figures that have one; details: the absolute
measurements (seconds, rates, bytes) the ratios come from, for this machine only.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import operator
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp

# jax records every XLA backend compilation under this event (jax._src.dispatch.BACKEND_COMPILE_EVENT).
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}


def call_seconds(call: Callable[[], object], number: int = 1) -> float:
  """Wall seconds per call of `number` back-to-back calls, until the last one's results are ready."""
  start = time.perf_counter()
  for _ in range(number - 1):
    call()
  jax.block_until_ready(call())
  return (time.perf_counter() - start) / number


def median_seconds(calls: dict[str, Callable[[], object]], repeats: int, min_seconds: float = 0.05) -> dict[str, float]:
  """Median seconds per call of each zero-argument call over `repeats` rounds, after one warm-up
  call each. A call shorter than `min_seconds` is timed as a batch of back-to-back calls lasting
  about that long; a round times each call once, so load from other processes hits all alike."""
  number = {name: max(1, math.ceil(min_seconds / call_seconds(call))) for name, call in calls.items()}
  times = {name: [] for name in calls}
  for _ in range(repeats):
    for name, call in calls.items():
      times[name].append(call_seconds(call, number[name]))
  return {name: statistics.median(t) for name, t in times.items()}


@dataclasses.dataclass(frozen=True)
class Compiled:
  """A function compiled for fixed (placed) arguments; calling it runs it on them."""
  executable: object
  args: tuple

  def __call__(self):
    return self.executable(*self.args)

  @property
  def flops(self) -> float:
    """XLA's cost-analysis FLOP count of one call."""
    return float(self.executable.cost_analysis()["flops"])


def compile_for(fn: Callable, *args, out_shardings=None) -> Compiled:
  """fn jitted with the shardings its arguments already have (host arrays: the default device) and
  out_shardings if given, compiled."""
  args = jax.tree.map(jnp.asarray, args)
  options = {} if out_shardings is None else {"out_shardings": out_shardings}
  jitted = jax.jit(fn, in_shardings=jax.tree.map(lambda x: x.sharding, args), **options)
  return Compiled(jitted.lower(*args).compile(), args)


def matmul(n: int) -> Compiled:
  """An n x n float32 matmul (2 n^3 FLOP), the reference for achieved FLOP/s."""
  return compile_for(lambda a: a @ a, jax.random.normal(jax.random.PRNGKey(0), (n, n)))


class Compilations:
  """Records XLA compilations while active: `with Compilations() as c: ...`; then c.events is a
  list of (function name, compile seconds)."""

  def __enter__(self):
    self.events = []
    jax.monitoring.register_event_duration_secs_listener(self._record)
    return self

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._record)

  def _record(self, event, seconds, **kwargs):
    if event == _BACKEND_COMPILE:
      self.events.append((kwargs.get("fun_name"), seconds))


@dataclasses.dataclass(frozen=True, eq=False)
class Pretrain:
  """A pretraining config as `palmup pretrain` runs it: its world (placed on the mesh) and mesh, the
  jitted init and chunk with their shardings (pretrain.jit_pretrain; `init(key)` and `chunk(state)`
  call them on the world), and the step's parts (pretrain.step_parts)."""
  config: object
  world: object
  mesh: object
  jit_init: Callable
  jit_chunk: Callable
  shardings: object
  parts: dict

  @property
  def env(self):
    return self.world.env

  def init(self, key):
    return self.jit_init(self.world, key)

  def chunk(self, state):
    return self.jit_chunk(self.world, state)


def load_env(config: str, overrides: tuple[tuple[str, object], ...] = ()):
  """(config, LatentEnv) for a config name (configs/<name>.py) or path with (key, value) overrides, validated."""
  from palmup import configs, generators, pretrain
  from palmup.env import make_env
  config = configs.load(config, **dict(overrides))
  pretrain.validate(config)
  return config, make_env(*generators.load(config.generator), config.obs_size, config.latent_space)


@functools.lru_cache(maxsize=None)
def pretrain_setup(config: str, overrides: tuple[tuple[str, object], ...] = ()) -> Pretrain:
  """The config (with (key, value) overrides) jitted as `palmup pretrain` jits it; one per config and
  process, so the benchmarks share its compilations (`pretrain_setup.__wrapped__(config)` gives a
  fresh, uncompiled one)."""
  from palmup import pretrain, sharding
  config, env = load_env(config, overrides)
  mesh = sharding.make_mesh()
  world = pretrain.make_world(config, env)
  init, chunk, shardings = pretrain.jit_pretrain(config, world, mesh)
  return Pretrain(config, sharding.put_replicated(world, mesh), mesh, init, chunk, shardings,
                  pretrain.step_parts(config, world, mesh))


def chunk_call(setup: Pretrain, seed: int = 0) -> Callable[[], object]:
  """A zero-argument call that runs the next chunk of one run (the state is threaded through)."""
  state = [setup.init(jax.random.PRNGKey(seed))]

  def call():
    state[0], metrics, strips = setup.chunk(state[0])
    return state[0], metrics, strips
  return call


@functools.lru_cache(maxsize=None)
def compiled_parts(setup: Pretrain):
  """-> part(name): the step's part `name` (pretrain.step_parts) compiled alone with the loop's
  shardings (inputs and outputs placed as in the loop's state: per-env leaves and sampled batches
  split over the mesh, the rest replicated), on inputs from one state of setup.init and from the
  parts before it. Each part compiles on first use, once per setup: the benchmarks share them."""
  from palmup import sharding
  sh = setup.shardings
  rep, split = sharding.replicated(setup.mesh), sharding.batch_sharding(setup.mesh)
  state = setup.init(jax.random.PRNGKey(1))
  key = jax.device_put(jax.random.PRNGKey(2), rep)
  inputs = {  # part -> (its arguments, its out_shardings)
      "act": lambda: ((state, key), split),
      "env_stats": lambda: ((state, action()), rep),
      "visits": lambda: ((state,), rep),
      "add": lambda: ((state, action()), sh.buffer),
      "env_step": lambda: ((state, action(), key), (sh.env_state, sh.obs)),
      "sample": lambda: ((state.buffer, key), split),
      "learn": lambda: ((state.learner, seq(), key), (sh.learner, rep, rep, split)),
      "agent_update": lambda: ((state.agent, state.learner.params, seq(), key, state.step, encoded()), (sh.agent, rep)),
      "gradient_play": lambda: ((state, key), (split, sh.env_state, sh.obs, sh.agent, rep)),
  }

  @functools.cache
  def compiled(name: str) -> Compiled:
    args, out_shardings = inputs[name]()
    return compile_for(setup.parts[name], *args, out_shardings=out_shardings)

  action = functools.cache(lambda: compiled("act")() if "act" in setup.parts else compiled("gradient_play")()[0])
  seq = functools.cache(lambda: compiled("sample")())
  encoded = functools.cache(lambda: compiled("learn")()[3])  # the frames the learner encoded
  return compiled


def met(value: float, target) -> bool:
  """Whether value meets target = (op, bound), e.g. ("<=", 1.2)."""
  op, bound = target
  return bool(_OPS[op](value, bound))


def parse_sizes(module, quick: bool, overrides: dict[str, str]) -> dict:
  """The module's sizes (QUICK over SIZES when quick), with string overrides cast to each size's type."""
  sizes = dict(module.SIZES, **(module.QUICK if quick else {}))
  for key, value in overrides.items():
    if key not in sizes:
      raise SystemExit(f"unknown size {key!r}; sizes: {', '.join(sizes)}")
    sizes[key] = type(module.SIZES[key])(value)
  return sizes


def main(module):
  """A benchmark module's command line: --quick, one --<size> per size; prints the result as JSON."""
  parser = argparse.ArgumentParser(description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="smoke-test sizes (seconds)")
  for key, value in module.SIZES.items():
    parser.add_argument(f"--{key}", help=f"default {value!r} (quick: {module.QUICK.get(key, value)!r})")
  args = vars(parser.parse_args())
  quick = args.pop("quick")
  sizes = parse_sizes(module, quick, {k: v for k, v in args.items() if v is not None})
  print(json.dumps(dict(sizes=sizes, **module.run(**sizes)), indent=2))
