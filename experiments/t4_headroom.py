"""T4 headroom: how much more judge-space entropy could any explorer reach than uniform random actions?

    python experiments/t4_headroom.py --workdir runs/t4_headroom --scale cpu    # a few minutes on 2 cores

T4's yardstick, judge_entropy, is the kNN entropy (k = 3) of the judge features of the num_envs
envs' frames at one step. Under uniform random actions every env's latent is isotropic, so (the
shipped generator normalising z) its frame has the generator's own image distribution: the same
as decoding i.i.d. prior latents. An explorer can only raise the entropy by *choosing* where each
env goes. This bounds from below what choosing can give: for each env (class prompt drawn
uniformly, as the env does) decode P candidate frames from prior latents, then pick one per env,
  coordinated   by greedy farthest-point selection in judge space (each env in turn takes the
                candidate farthest from the frames already picked): it sees the other envs;
  independent   the candidate rarest under the prior: farthest from its k-th nearest neighbour
                among a fixed reference of `reference` other prior frames. Each env alone, with a
                novelty measure that does not move: what a per-env policy (APT's actor sees one
                env's frame) could do with a perfect novelty reward.
P = 1 is the random-action / i.i.d. baseline, larger P a selector with P choices per env. Actions can steer an env's latent direction almost anywhere within a few steps
(a held action a drives z to 0.5 a at ema 0.7, action weight 0.5, against a stationary noise std
of 0.21 per dimension), so a learned explorer's reachable set is comparable. Greedy selection is
not the optimum, so the headroom is at least the table's gap. Mean +- std over seeds of the
per-sample entropy (each seed averages `samples` independent draws of num_envs envs).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import common
from palmup import apt, configs, generators
from palmup.env import LatentEnv
from palmup.evaluators import exploration

SCALE = {"tiny": dict(config="pretrain_tiny", seeds=1, samples=1, choices=(1, 4), reference=32),  # CI plumbing
         "cpu": dict(config="pretrain_fashion_mnist", seeds=3, samples=4, choices=(1, 4, 16, 64, 128), reference=1024),
         "full": dict(config="pretrain_fashion_mnist", seeds=3, samples=16, choices=(1, 4, 16, 64, 256, 1024),
                      reference=8192)}
SELECTORS = ("coordinated", "independent")


def greedy_pick(features) -> jax.Array:
  """features [N, P, F] (P candidates of each of N envs) -> the picked candidate's features [N, F]:
  env 0 takes its first candidate; env i the candidate farthest (min distance) from those picked."""
  n = features.shape[0]

  def pick(chosen, i):
    d = jnp.linalg.norm(features[i][:, None, :] - chosen[None, :, :], axis=-1)  # [P, N]
    d = jnp.where(jnp.arange(n)[None, :] < i, d, jnp.inf)  # only the envs already picked
    best = features[i, jnp.argmax(jnp.min(d, axis=1))]
    return chosen.at[i].set(jnp.where(i == 0, features[0, 0], best)), None

  return jax.lax.scan(pick, jnp.zeros(features.shape[::2], features.dtype), jnp.arange(n))[0]


def rarest_pick(features, reference) -> jax.Array:
  """features [N, P, F], reference [M, F] -> per env the candidate farthest from its k-th nearest
  reference frame [N, F] (no env sees another)."""
  kth = apt.kth_distance(features, reference, exploration.ENTROPY_K)  # [N, P]
  return jnp.take_along_axis(features, jnp.argmax(kth, axis=1)[:, None, None], axis=1)[:, 0]


def draw(features_of, env: LatentEnv, num_envs: int, p: int, key):
  """(judge features [num_envs, p, F] of p prior frames per env, each env's class drawn uniformly)."""
  kz, ky = jax.random.split(key)
  labels = jax.random.randint(ky, (num_envs,), 0, env.num_classes)
  return features_of(jax.random.normal(kz, (num_envs, p, env.latent_dim)), labels)


def entropies(features, reference, choices: tuple[int, ...]) -> dict[tuple[str, int], float]:
  """{(selector, P): judge-space kNN entropy of the frames picked among the first P candidates}."""
  pick = {"coordinated": lambda f: greedy_pick(f), "independent": lambda f: rarest_pick(f, reference)}
  return {(name, p): float(_entropy(pick[name](features[:, :p]))) for name in SELECTORS for p in choices}


@jax.jit
def _entropy(x):
  return apt.knn_entropy(x, exploration.ENTROPY_K)


def judged_frames(env: LatentEnv, judge):
  """Jitted (z [N, P, d], labels [N]) -> judge features [N, P, F] of the decoded frames, an env at a time."""
  return jax.jit(lambda z, labels: jax.lax.map(
      lambda a: judge.apply(env.decode(a[0], jnp.full(a[0].shape[:1], a[1])))[1], (z, labels)))


def main():
  args = common.parser(__doc__).parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  s = SCALE[args.scale]
  config = configs.load(s["config"])
  env = LatentEnv(*generators.load(config.generator), obs_size=config.obs_size)
  features_of = judged_frames(env, exploration.load(config.log.judge or "builtin:fashion_mnist_32"))
  per_seed = {(name, p): [] for name in SELECTORS for p in s["choices"]}
  for seed in range(s["seeds"]):
    k_ref, k_draws = jax.random.split(jax.random.PRNGKey(seed))
    reference = draw(features_of, env, s["reference"], 1, k_ref)[:, 0]
    draws = [entropies(draw(features_of, env, config.num_envs, max(s["choices"]), k), reference, s["choices"])
             for k in jax.random.split(k_draws, s["samples"])]
    for cell in per_seed:
      per_seed[cell].append(float(np.mean([d[cell] for d in draws])))
  base = np.asarray(per_seed[("coordinated", 1)])  # P = 1: both selectors take the only candidate
  cell = lambda v: f"{np.mean(v):.2f} +- {np.std(v):.2f} ({np.mean(np.asarray(v) - base):+.2f})"
  rows = [[str(p)] + [cell(per_seed[(name, p)]) for name in SELECTORS] for p in s["choices"]]
  common.write_json(args.workdir / "results.json", {"config": s["config"], "num_envs": config.num_envs,
                                                     "per_seed": {f"{n}/{p}": v for (n, p), v in per_seed.items()}})
  common.write_results(args.workdir, f"T4 headroom: judge entropy with P choices per env ({args.scale} scale)", started,
                       f"{s['config']}'s generator and env ({config.num_envs} envs, {config.obs_size} x "
                       f"{config.obs_size}), the shipped judge; {s['seeds']} seeds x {s['samples']} draws; reference "
                       f"{s['reference']} prior frames. P = 1: i.i.d. prior frames, what uniform random actions give "
                       "per step. Cells: judge_entropy (nats), mean +- std over seeds (gain over P = 1).\n\n"
                       + common.markdown_table(["choices per env P", *SELECTORS], rows))


if __name__ == "__main__":
  main()
