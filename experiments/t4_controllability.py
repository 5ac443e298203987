"""T4 controllability: how much of the next frame's novelty can an action choose?

    python experiments/t4_controllability.py --workdir runs/t4_control --scale cpu \
        --encoder runs/t4/default__random_actions_seed0/encoder     # a few minutes on 2 cores

APT's critic learns Q(s, a) from particle rewards of the frames that actions lead to. What it can
learn is bounded by how much of that reward the action decides. For each env setting of T4's sweep
(t4_exploration.SETTINGS; the ones that change the env), num_envs envs play `warmup` steps of uniform
random actions (random play's stationary state), then each env tries A uniform actions x E noise
draws for one step. A candidate frame's novelty is its particle reward against the other envs' next
frames under random actions: log(1 + mean distance to its apt.k nearest), in a feature space:
  judge    the shipped judge (fixed; T4's yardstick)
  learner  the encoder of --encoder (the space APT's reward uses; skipped without it)
The novelty's variance over (env, action, noise) splits into
  state    Var_s E[r | s]: what the env's current frame decides (no action can change it)
  action   E_s Var_a E[r | s, a]: what a policy can choose (the critic's signal), from the means
           over E noise draws minus their sampling variance (unbiased)
  noise    E Var[r | s, a]: the fresh latent's share
as fractions of the total, and `best-of-A gain`: how much the best of the A actions beats a random
one, in stds of r within a state. Cross-fitted, so noise alone gives 0: the best action is picked by
its mean over half the noise draws and scored by its mean over the other half.
Mean +- std over seeds.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import common
import t4_exploration
from palmup import configs, generators
from palmup.env import LatentEnv, latent_transition, params_from_config
from palmup.evaluators import exploration
from palmup.learner import load_encoder

SCALE = {"tiny": dict(config="pretrain_tiny", seeds=1, warmup=2, actions=3, noises=2),  # CI plumbing
         "cpu": dict(config="pretrain_fashion_mnist", seeds=3, warmup=32, actions=16, noises=4),
         "full": dict(config="pretrain_fashion_mnist", seeds=5, warmup=64, actions=64, noises=16)}
# The env settings: T4's sweep (those that change the env), then the two ends of action_weight.
SETTINGS = {name: o for name, o in t4_exploration.SETTINGS.items() if all(k.startswith("env.") for k in o)}
SETTINGS.update({"action_weight 1.0 (no noise)": {"env.action_weight": 1.0},
                 "ema 0 (a fresh latent per step)": {"env.ema": 0.0}})


def novelty(candidates, reference, k: int) -> jax.Array:
  """candidates [N, C, F] (C candidate frames of each of N envs), reference [N, F] (every env's
  frame under random actions) -> log(1 + mean distance to the k nearest reference frames of the
  *other* envs) [N, C]."""
  d = jnp.linalg.norm(candidates[:, :, None, :] - reference[None, None], axis=-1)  # [N, C, N]
  d = jnp.where(jnp.eye(reference.shape[0], dtype=bool)[:, None, :], jnp.inf, d)
  return jnp.log1p(jnp.mean(-jax.lax.top_k(-d, k)[0], axis=-1))


def decompose(r) -> dict[str, float]:
  """r [N envs, A actions, E noise draws] -> variance shares (state, action, noise) and the
  cross-fitted best-of-A gain in stds of r within a state."""
  r = np.asarray(r, np.float64)
  e = r.shape[2]
  noise = r.var(axis=2, ddof=1).mean()
  per_action = r.mean(axis=2)  # [N, A]
  action = max(per_action.var(axis=1, ddof=1).mean() - noise / e, 0.0)
  state = per_action.mean(axis=1).var(ddof=1)
  total = state + action + noise
  pick, score = r[:, :, : e // 2].mean(axis=2), r[:, :, e // 2:].mean(axis=2)
  best = np.take_along_axis(score, np.argmax(pick, axis=1)[:, None], axis=1)[:, 0]
  gain = (best - score.mean(axis=1)).mean() / np.sqrt(action + noise)
  return {"state": state / total, "action": action / total, "noise": noise / total, "gain": gain}


def measure(env: LatentEnv, params, spaces: dict, k: int, s: dict, num_envs: int, key) -> dict:
  """{space: decompose(...)} for one seed of one setting."""
  kw, kc, kr, kn = jax.random.split(key, 4)
  keys = jax.random.split(kw, num_envs)
  _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
  step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
  for t in range(s["warmup"]):
    ka, ks = jax.random.split(jax.random.fold_in(kw, t))
    action = jax.random.uniform(ka, (num_envs, env.latent_dim), minval=-1.0, maxval=1.0)
    _, state, *_ = step(jax.random.split(ks, num_envs), state, action, params)
  a, e, d = s["actions"], s["noises"], env.latent_dim
  actions = jax.random.uniform(kc, (num_envs, a, 1, d), minval=-1.0, maxval=1.0)
  z = latent_transition(state.z[:, None, None], actions, jax.random.normal(kn, (num_envs, a, e, d)), params)
  frames = env.decode(z, jnp.broadcast_to(state.label[:, None, None], z.shape[:3]))  # [N, A, E, H, W, C]
  random = latent_transition(state.z, jax.random.uniform(kr, (num_envs, d), minval=-1.0, maxval=1.0),
                             jax.random.normal(jax.random.fold_in(kr, 1), (num_envs, d)), params)
  reference_frames = env.decode(random, state.label)
  out = {}
  for name, features in spaces.items():
    cand = jax.lax.map(features, frames.reshape((num_envs * a,) + frames.shape[2:]))  # [N*A, E, F]
    r = novelty(cand.reshape(num_envs, a * e, -1), features(reference_frames), k)
    out[name] = decompose(r.reshape(num_envs, a, e))
  return out


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--encoder", default=None, help="a pretrained encoder/ directory: the learner's feature space")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  s = SCALE[args.scale]
  config = configs.load(s["config"])
  generator = generators.load(config.generator)
  judge = exploration.load(config.log.judge or "builtin:fashion_mnist_32")
  spaces = {"judge": jax.jit(lambda obs: judge.apply(obs)[1])}
  if args.encoder:
    learner, learner_params, _ = load_encoder(args.encoder)
    spaces["learner"] = jax.jit(lambda obs: learner.features(learner_params, obs))
  rows, raw = [], {}
  for setting, overrides in SETTINGS.items():
    cfg = configs.load(s["config"], **overrides)
    env = LatentEnv(*generator, obs_size=cfg.obs_size)
    seeds = [measure(env, params_from_config(cfg), spaces, cfg.apt.k, s, cfg.num_envs, jax.random.PRNGKey(i))
             for i in range(s["seeds"])]
    raw[setting] = seeds
    for space in spaces:
      v = {m: [x[space][m] for x in seeds] for m in seeds[0][space]}
      cell = lambda m, scale=100, digits=1: f"{np.mean(v[m]) * scale:.{digits}f} +- {np.std(v[m]) * scale:.{digits}f}"
      rows.append([setting, space, cell("state"), cell("action"), cell("noise"), cell("gain", 1, 2)])
    common.write_json(args.workdir / "results.json", raw)
  common.write_results(
      args.workdir, f"T4 controllability: the action's share of the next frame's novelty ({args.scale} scale)", started,
      f"{s['config']}'s generator and env ({config.num_envs} envs after {s['warmup']} random steps), "
      f"{s['actions']} actions x {s['noises']} noise draws per env, novelty with k = {config.apt.k} against the "
      f"other envs' random-action frames; learner space: {args.encoder or 'not given'}. Shares of the novelty's "
      f"variance in %, mean +- std over {s['seeds']} seeds; gain: best of {s['actions']} actions over a random one, "
      "in stds of the novelty within a state (cross-fitted: 0 if actions do not matter).\n\n"
      + common.markdown_table(["setting", "space", "state %", "action %", "noise %", "best-of-A gain"], rows))


if __name__ == "__main__":
  main()
