"""`palmup render`: pictures of latent trajectories.

For each dynamics setting in `render.sweep` (one EnvParams field, several values) and each class
in `render.classes`, one env is rolled out for `render.steps` steps under `render.policy`:
  random   - a fresh uniform action in [-1, 1]^d every step
  constant - one uniform action held for the whole trajectory
  zero     - zero actions (the latent drifts with the noise alone)
All trajectories of a setting share their random numbers, so differences come from the setting.

Writes into the workdir: strips/<field>=<value>.png (rows: classes, columns: time) and
trajectories.gif (each frame: rows = settings, columns = classes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from palmup import config_checks
from palmup import generators, viz, workdirs
from palmup.env import EnvParams, LatentEnv, make_env, params_from_config

POLICIES = ("random", "constant", "zero")


def rollout(env: LatentEnv, params: EnvParams, classes: jax.Array, steps: int, policy: str,
            key: jax.Array, on_step=None) -> np.ndarray:
  """uint8 frames [steps + 1, len(classes), H, W, C]; env j starts in class classes[j] and the
  episode never ends within `steps`. `on_step()` is called after each step (progress bars)."""
  n = classes.shape[0]
  params = params.replace(episode_length=steps + 1)
  k_reset, k_const, k_run = jax.random.split(key, 3)
  reset_keys = jnp.broadcast_to(k_reset, (n,) + k_reset.shape)  # same latent start for every class
  _, state = jax.vmap(env.reset, (0, None))(reset_keys, params)
  state = state.replace(label=classes)
  const = jax.random.uniform(k_const, (env.latent_dim,), minval=-1.0, maxval=1.0)

  @jax.jit
  def step(state, k):
    ka, ks = jax.random.split(k)
    action = {"random": jax.random.uniform(ka, (env.latent_dim,), minval=-1.0, maxval=1.0),
              "constant": const, "zero": jnp.zeros(env.latent_dim)}[policy]
    keys = jnp.broadcast_to(ks, (n,) + ks.shape)
    obs, state, *_ = jax.vmap(env.step, (0, 0, None, None))(keys, state, action, params)
    return state, obs

  frames = [np.asarray(jax.jit(env.decode)(state.z, state.label))]
  for k in jax.random.split(k_run, steps):
    state, obs = step(state, k)
    frames.append(np.asarray(obs))
    if on_step:
      on_step()
  return np.stack(frames)


def main(config, workdir):
  config_checks.one_of(config, "render.policy", POLICIES)
  config_checks.positive(config, "render.steps")
  config_checks.positive(config, "obs_size")
  base = params_from_config(config)
  gen, gen_params = generators.load(config.generator.path)
  env = make_env(gen, gen_params, config.obs_size, config.latent_space)  # checks latent_space before any work
  classes = list(config.render.classes) or list(range(gen.num_classes))
  config_checks.require(all(0 <= c < gen.num_classes for c in classes), "render.classes", classes,
             f"class indices in [0, {gen.num_classes})")
  sweep = dict(config.render.sweep) or {"ema": [base.ema]}
  config_checks.require(len(sweep) == 1 and set(sweep) <= set(EnvParams.__dataclass_fields__), "render.sweep", sweep,
             f"one EnvParams field ({', '.join(EnvParams.__dataclass_fields__)}) mapped to a list of values")
  (field, values), = sweep.items()
  workdir = workdirs.prepare(workdir, config)
  bar = workdirs.progress(len(values) * config.render.steps, "render", unit="frame-batch")
  strips = []
  for value in values:
    frames = rollout(env, base.replace(**{field: value}), jnp.asarray(classes), config.render.steps,
                     config.render.policy, jax.random.PRNGKey(config.seed), bar.update)
    strips.append(frames)
    viz.save_png(workdir / "strips" / f"{field}={value}.png", viz.grid(frames.transpose(1, 0, 2, 3, 4)),
                 scale=config.scale)
  bar.close()
  movie = np.stack(strips, axis=1)  # [T, settings, classes, H, W, C]
  viz.save_gif(workdir / "trajectories.gif", [viz.grid(f) for f in movie], scale=config.scale)
  names = [gen.class_names[c] if gen.class_names else str(c) for c in classes]
  print(f"wrote {workdir / 'strips'} and {workdir / 'trajectories.gif'}: rows {field}={list(values)}, "
        f"columns {names}")
