"""T4 diagnosis: why APT's actor gives every state the same action. What its critic is fitted to, what
it learned, and where its gradient points, measured on trained runs against the world's truth.

    python experiments/t4_diagnosis.py --workdir runs/t4_diagnosis --runs runs/t4_budget/*apt*_seed0

For each APT run (a `palmup pretrain` workdir with checkpoints), from its last checkpoint: the
run's N envs at their current states each try A uniform actions x E noise draws for one step (the
world's own transition and generator), and from each candidate frame f_1 the run's actor acts for
the n - 1 further steps of its n-step return. Measured there, with the run's own networks:

  reward    the agent's reward of f_1: the particle reward (palmup.apt.particle_reward with the
            run's k, clip, average and running mean) of f_1's learner features among the features
            of a batch replayed from the run's buffer (apt.reference = "batch"; the frame is not one
            of the batch's: its k nearest are all others), or among the N envs' frames of the same
            step, every env having tried the same candidate index ("population");
  target    the critic's n-step target y = R + gamma^n (min Q_target(f_n, a') - alpha log pi(a'|f_n)),
            R as the run computes it (apt.nstep_reward: "first" is r(f_0), which no action changes);
  Q         min(Q1, Q2)(f_0, a): what the critic says of each action.

Each is split, over (env, action, noise), into what the state decides, what the action decides and
what the noise decides (t4_controllability.decompose: variance shares in %, and the cross-fitted
best-of-A gain in stds within a state); Q has no noise. Then:

  corr(Q, target)   within a state, the correlation over actions of Q with the noise-averaged target
                    (does the critic rank actions as the world does? 0: no), averaged over states;
  true gradient     d E_noise[reward of f_1] / da at the actor's action, through the transition, the
                    generator and the encoder (the world is differentiable): its pairwise cosine across
                    states (1: the world itself rewards one shared direction);
  critic gradient   dQ/da at the same action: its pairwise cosine across states, and its cosine with
                    the true gradient, averaged over states (0: unrelated to the world);
  SAC               the temperature alpha against Q's spread over actions: alpha / spread is what a
                    nat of the policy's entropy is worth in units of what choosing an action is worth.

Writes results.json and results.md (one row per run). Runs: experiments/t4_budget.py's APT runs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import common
from palmup import apt, checkpoints, pretrain, pretrain_job, sharding
from palmup.env import latent_transition
from palmup.explorer import action_stats
from palmup.learner import view
from t4_controllability import decompose

SCALE = {"tiny": dict(actions=3, noises=2), "cpu": dict(actions=16, noises=4), "full": dict(actions=32, noises=8)}


def _tuples(x):
  """config.json's lists back to the tuples the configs hold."""
  if isinstance(x, dict):
    return {k: _tuples(v) for k, v in x.items()}
  return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def restore(run: Path):
  """(config, world, loop, state at the run's last checkpoint, updates) of a pretrain workdir."""
  config = ml_collections.ConfigDict(_tuples(pretrain_job.complete(json.loads((run / "config.json").read_text()))))
  pretrain.validate(config)
  world = pretrain.make_world(config)
  mesh = sharding.make_mesh()
  loop = pretrain.Loop.make(config, world, mesh)
  init, _ = pretrain.make_pretrain(config, mesh)
  abstract = jax.eval_shape(init, world, jax.random.PRNGKey(0))
  store = checkpoints.Checkpoints(run, config.train.keep_checkpoints)
  try:
    state, chunks = store.restore(abstract)
  finally:
    store.close()
  if state is None:
    raise SystemExit(f"{run} holds no checkpoint")
  return config, world, loop, state, int(state.agent.updates)


def measure(run: Path, actions: int, noises: int, seed: int = 0) -> dict:
  config, world, loop, state, updates = restore(run)
  agent, env, params = loop.agent, world.env, world.env_params
  c = config
  n_envs, d = state.env_state.z.shape
  n = c.agent.nstep
  lp = state.learner.params
  k_batch, k_act, k_noise, k_roll, k_views = jax.random.split(jax.random.PRNGKey(seed), 5)
  encode = jax.jit(lambda obs, key: loop.learner.features(lp, view(key, obs, c.learner.augment, c.learner.crop_min,
                                                                     c.learner.jitter)))
  seq = jax.jit(loop.sample)(state.buffer, k_batch)
  batch = encode(seq.obs[:, 0], k_views)  # the reward's reference: the replayed batch's frames 0

  def reward(features):
    """The agent's reward of frames [N, ...A, D]: among the replayed batch (apt.reference = "batch"),
    or among the N envs' frames of the same step and candidate ("population"; no running mean)."""
    if c.apt.reference == "population":
      moved = jnp.moveaxis(features, 0, -2)  # [...A, N, D]: one population per candidate
      return jnp.moveaxis(apt.particle_reward(moved, c.apt.k, average=c.apt.average, clip=c.apt.clip), -1, 0)
    kwargs = dict(average=c.apt.average, clip=c.apt.clip, reference=batch)
    if c.apt.running_mean:  # the run's running mean, held (its update is discarded)
      return apt.particle_reward(features, c.apt.k, running_mean=state.agent.reward_mean, **kwargs)[0]
    return apt.particle_reward(features, c.apt.k, **kwargs)

  z0, labels = state.env_state.z, state.env_state.label
  observed = lambda features, z, y: loop.observed(features, z, y)
  h0 = encode(state.obs, k_views)
  o0 = observed(h0, z0, labels)
  cand = jax.random.uniform(k_act, (n_envs, actions, d), minval=-1.0, maxval=1.0)

  @jax.jit
  def rollout(cand, key):
    """The reward of f_1 and the n-step target from each (env, action) with one noise draw -> [N, A] each."""
    keys = jax.random.split(key, n)
    y = jnp.broadcast_to(labels[:, None], cand.shape[:2])
    z = latent_transition(z0[:, None], cand, env.fresh_latents(keys[0], y), params)
    frames = env.decode(z, y)
    h = encode(frames.reshape((-1,) + frames.shape[2:]), k_views).reshape(cand.shape[:2] + (-1,))
    r1 = reward(h)
    rewards = [r1]
    for i in range(1, n):  # the actor's own acting policy from f_1 on
      a = agent.act(state.agent, observed(h, z, y).reshape(-1, o0.shape[-1]), jax.random.fold_in(keys[i], 1),
                    state.step).reshape(cand.shape)
      z = latent_transition(z, a, env.fresh_latents(keys[i], y), params)
      frames = env.decode(z, y)
      h = encode(frames.reshape((-1,) + frames.shape[2:]), k_views).reshape(cand.shape[:2] + (-1,))
      rewards.append(reward(h))
    on = observed(h, z, y).reshape(-1, o0.shape[-1])
    a_next, log_prob = agent.sample(state.agent.actor, agent.inputs(on), jax.random.fold_in(key, 99),
                                     agent.std(state.step))
    q1, q2 = agent.critic.apply(state.agent.critic_target, agent.inputs(on), a_next)
    alpha = jnp.exp(state.agent.log_alpha) if agent.sac else 0.0
    soft = (jnp.minimum(q1, q2) - alpha * log_prob).reshape(cand.shape[:2])
    if c.apt.nstep_reward == "first":
      ret = jnp.broadcast_to(reward(h0)[:, None], cand.shape[:2])
    else:
      ret = sum(c.agent.discount ** i * r for i, r in enumerate(rewards))
    return r1, ret + c.agent.discount ** n * soft

  draws = [rollout(cand, jax.random.fold_in(k_roll, e)) for e in range(noises)]
  r1 = np.stack([np.asarray(x[0]) for x in draws], axis=-1)  # [N, A, E]
  target = np.stack([np.asarray(x[1]) for x in draws], axis=-1)
  q = np.asarray(jax.jit(jax.vmap(lambda a: jnp.minimum(*agent.critic.apply(state.agent.critic, agent.inputs(o0), a)),
                                  in_axes=1, out_axes=1))(cand))  # [N, A]

  # the true gradient of the next frame's reward at the actor's action, and the critic's
  pi = agent.policy(state.agent, o0)

  def mean_reward(a, key):
    z = latent_transition(z0, a, env.fresh_latents(key, labels), params)
    return jnp.sum(reward(loop.learner.encode(lp, env.render(z, labels))))
  true_grad = sum(jax.jit(jax.grad(mean_reward))(pi, jax.random.fold_in(k_noise, e)) for e in range(noises))
  critic_grad = jax.grad(lambda a: jnp.sum(jnp.minimum(*agent.critic.apply(state.agent.critic, agent.inputs(o0), a))))(pi)
  unit = lambda g: g / jnp.maximum(jnp.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
  within = lambda x, y: np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(x, y) if a.std() > 0 and b.std() > 0])
  q_spread = float(q.std(axis=1).mean())
  out = {"run": run.name, "algo": c.agent.algo, "observe": c.agent.observe, "updates": updates,
         "reward": decompose(r1), "target": decompose(target),
         "q": {"state": float(q.mean(axis=1).var() / (q.mean(axis=1).var() + q.var(axis=1).mean())),
               "spread_actions": q_spread, "spread_states": float(q.mean(axis=1).std())},
         "corr_q_target": float(within(q, target.mean(-1))), "corr_q_reward": float(within(q, r1.mean(-1))),
         "true_grad_cosine": float(action_stats(true_grad)["cosine"]),
         "critic_grad_cosine": float(action_stats(critic_grad)["cosine"]),
         "critic_vs_true_cosine": float(jnp.mean(jnp.sum(unit(true_grad) * unit(critic_grad), -1))),
         "policy_std": float(action_stats(pi)["std"]), "policy_cosine": float(action_stats(pi)["cosine"]),
         "reward_std": float(r1.std()), "target_std": float(target.std())}
  if agent.sac:
    alpha = float(jnp.exp(state.agent.log_alpha))
    out["sac"] = {"alpha": alpha, "alpha_over_q_spread": alpha / max(q_spread, 1e-12)}
  return out


def row(r: dict) -> list[str]:
  pct = lambda part: (f"{100 * r[part]['state']:.0f} / {100 * r[part].get('action', 0):.1f} / "
                      f"{100 * r[part].get('noise', 0):.0f}")
  sac = r.get("sac")
  return [r["run"], r["algo"], r["observe"], str(r["updates"]), pct("reward"), f"{r['reward']['gain']:.2f}",
          pct("target"), f"{r['target']['gain']:.2f}", f"{r['q']['spread_actions']:.4f} / {r['q']['spread_states']:.4f}",
          f"{r['corr_q_target']:+.2f}", f"{r['true_grad_cosine']:.2f}", f"{r['critic_grad_cosine']:.2f}",
          f"{r['critic_vs_true_cosine']:+.2f}", f"{r['policy_std']:.2f} / {r['policy_cosine']:.2f}",
          f"{sac['alpha']:.3f} ({sac['alpha_over_q_spread']:.2f}x)" if sac else "-"]


def seed_means(results: list[dict]) -> list[dict]:
  """One result per group of runs that differ only in their seed (run names ending in _seed<k>), each
  number the mean over the group, "seeds" how many runs it has."""
  groups: dict[str, list[dict]] = {}
  for r in results:
    groups.setdefault(re.sub(r"_seed\d+$", "", r["run"]), []).append(r)

  def mean(values):
    if isinstance(values[0], dict):
      return {k: mean([v[k] for v in values]) for k in values[0]}
    return float(np.mean(values)) if isinstance(values[0], (int, float)) else values[0]
  return [{**mean(rs), "run": name, "seeds": len(rs), "updates": rs[0]["updates"]} for name, rs in groups.items()]


HEADER = ["run", "algo", "observe", "agent updates", "reward: state / action / noise %", "reward best-of-A",
          "target: state / action / noise %", "target best-of-A", "Q spread: actions / states", "corr(Q, target)",
          "true grad cosine", "critic grad cosine", "critic vs true", "policy std / cosine", "SAC alpha (/ Q spread)"]


def main():
  parser = common.parser(__doc__)
  parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN", help="APT pretrain workdirs")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  s = SCALE[args.scale]
  results = []
  for run in args.run_dirs:
    results.append(measure(run, s["actions"], s["noises"]))
    common.write_json(args.workdir / "results.json", results)
  common.write_results(
      args.workdir, "T4 diagnosis: what APT's critic is fitted to and where its actor is sent", started,
      f"Each run's last checkpoint: its envs each try {s['actions']} uniform actions x {s['noises']} noise draws "
      "(the reward of the next frame, the n-step target, the critic's Q); shares of variance in %, best-of-A in "
      "stds within a state (cross-fitted); gradients at the actor's action.\n\n"
      + common.markdown_table(HEADER, [row(r) for r in results])
      + "\nMeans over the seeds of each run:\n\n"
      + common.markdown_table(["runs (mean over seeds)", "seeds"] + HEADER[1:],
                              [[r["run"], str(r["seeds"])] + row(r)[1:] for r in seed_means(results)]),
      runs=args.run_dirs)


if __name__ == "__main__":
  main()
