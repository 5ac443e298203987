"""Exploration measured in a fixed feature space: one yardstick for every explorer and every run.

The learner's own features move as it trains and differ between runs, so they cannot compare
explorers. The *judge* is a small CNN classifier (`generator_quality.Classifier`) trained once on real
Fashion-MNIST and shipped with palmup (`builtin:fashion_mnist_32`, made by scripts/train_judge.py);
its penultimate features (128-d) define the space. Metrics of N visited frames (`visit_metrics`, from
`judge.apply` of the frames; pretraining logs them per chunk over the chunk's frames):

  judge_entropy      Kozachenko-Leonenko kNN entropy (nats, k = 3) of the judge features of the
                     envs' frames at one step, averaged over steps: how spread the visited images
                     are, as a classifier of real images sees them
  judge_coverage     coverage (Naeem et al., 2020) per class, averaged over classes: the fraction of
                     real test images of class c whose k-NN ball among the real images of class c
                     (k = 5) holds a visited frame prompted with class c; judge_coverage_min is the
                     worst class. It rewards visiting all of each class's real manifold, not only
                     spreading out
  judge_agreement    fraction of frames the judge classifies as their prompted class (frames
                     pushed off the image manifold lower it)
  direction_entropy  kNN entropy (nats, k = 3) of the envs' latent directions z/|z| at one step,
                     averaged over steps (palmup's StyleGAN
                     normalises z, so only the direction reaches the image); latent_norm is |z|,
                     a diagnostic only

Entropies depend on the number of envs and coverage on the number of frames: compare runs with the
same num_envs and chunk_steps.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from palmup import apt, checkpoints, workdirs
from palmup.errors import UserError
from palmup.data import transforms
from palmup.evaluators.generator_quality import Classifier

ASSETS = Path(__file__).parent / "assets"
ENTROPY_K = 3
COVERAGE_K = 5


class Judge(flax.struct.PyTreeNode):
  """A frozen classifier of real images: uint8 or float images of any size -> features [N, F].
  A pytree whose leaves are the params (what a jitted program takes as an argument)."""
  module: Classifier = flax.struct.field(pytree_node=False)
  params: Any
  size: int = flax.struct.field(pytree_node=False)
  channels: int = flax.struct.field(pytree_node=False)
  dataset: str = flax.struct.field(pytree_node=False)

  @property
  def num_classes(self) -> int:
    return self.module.num_classes

  def apply(self, images) -> tuple[jax.Array, jax.Array]:
    """images [N, H, W, C] (uint8, or float in [-1, 1]) -> (logits [N, K], features [N, F])."""
    return self.module.apply({"params": self.params}, transforms.prepare(images, self.size, self.channels))


def save(directory, judge: Judge, extra: dict | None = None):
  """Writes judge.json and params/ (orbax) into directory."""
  directory = workdirs.path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  spec = {"num_classes": judge.num_classes, "widths": list(judge.module.widths),
          "feature_dim": judge.module.feature_dim, "size": judge.size, "channels": judge.channels,
          "dataset": judge.dataset} | (extra or {})
  (directory / "judge.json").write_text(json.dumps(spec, indent=2) + "\n")
  checkpoints.write_params(directory / "params", judge.params)


def resolve(name: str):
  """'builtin:NAME' -> the shipped judge's directory; anything else is a directory path."""
  path = ASSETS / name.split(":", 1)[1] if name.startswith("builtin:") else workdirs.path(name)
  if not (path / "judge.json").exists():
    valid = sorted(f"builtin:{p.name}" for p in ASSETS.glob("*") if (p / "judge.json").exists())
    raise UserError(f"{name!r} is not a judge (no judge.json in {path}); valid: {', '.join(valid)} "
                            "or a directory written by scripts/train_judge.py")
  return path


def load(name: str) -> Judge:
  """A saved judge: 'builtin:fashion_mnist_32' or a directory."""
  directory = resolve(name)
  spec = json.loads((directory / "judge.json").read_text())
  module = Classifier(spec["num_classes"], tuple(spec["widths"]), spec["feature_dim"])
  shape = (1, spec["size"], spec["size"], spec["channels"])
  target = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(shape))["params"])
  params = checkpoints.read_params(directory / "params", target, "judge", "rebuild it with scripts/train_judge.py")
  return Judge(module, params, spec["size"], spec["channels"], spec["dataset"])


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Reference:
  """Real test images in judge space: features [M, F], labels [M], radii [M] (the distance from
  each to its COVERAGE_K-th nearest other real image of its class)."""
  features: jax.Array
  labels: jax.Array
  radii: jax.Array


def reference(judge: Judge, per_class: int, seed: int = 0, data_dir=None) -> Reference:
  """Up to per_class real test images of each class of judge.dataset, in judge space (host, once)."""
  from palmup.data import datasets
  test = datasets.load(judge.dataset, "test", data_dir)
  rng = np.random.default_rng(seed)
  idx = np.concatenate([rng.permutation(np.flatnonzero(test.labels == c))[:per_class]
                        for c in range(test.num_classes)])
  images, embed = test.images[idx], jax.jit(lambda x: judge.apply(x)[1])
  features = np.concatenate([np.asarray(embed(images[i:i + 1000])) for i in range(0, len(images), 1000)])
  labels = test.labels[idx].astype(np.int32)
  same = labels[:, None] == labels[None, :]
  dist = np.where(same, np.asarray(apt.pairwise_distances(jnp.asarray(features))), np.inf)
  radii = np.sort(dist, axis=1)[:, COVERAGE_K]  # column 0 is the image itself
  return Reference(jnp.asarray(features), jnp.asarray(labels), jnp.asarray(radii, jnp.float32))


def coverage(ref: Reference, features, labels, num_classes: int) -> jax.Array:
  """Per-class coverage [num_classes] of visited frames (features [N, F], prompted labels [N])."""
  sq = lambda x: jnp.sum(jnp.square(x), -1)
  cross = jnp.matmul(ref.features, features.T, precision=apt.HIGHEST)  # float32 on every backend (palmup.apt)
  d2 = sq(ref.features)[:, None] - 2.0 * cross + sq(features)[None, :]
  d2 = jnp.where(ref.labels[:, None] == labels[None, :], d2, jnp.inf)
  covered = jnp.min(d2, axis=1) <= jnp.square(ref.radii)  # [M]
  onehot = jax.nn.one_hot(ref.labels, num_classes)
  return (covered @ onehot) / jnp.maximum(jnp.sum(onehot, 0), 1.0)


def visit_metrics(judge: Judge, ref: Reference, logits, features, labels, z) -> dict[str, jax.Array]:
  """Exploration metrics (see the module docstring) of the frames num_envs envs visited over T steps,
  from the judge's outputs on them (logits [T, N, K], features [T, N, F]: `judge.apply`), their
  prompted labels [T, N] and latents z [T, N, d]. Entropies are of the N envs' frames at one step,
  averaged over the T steps (over all T * N frames, an env's own neighbouring frames would be its
  nearest neighbours, and the estimate would measure step size, not spread); coverage and agreement
  are over all T * N frames."""
  flat = lambda x: x.reshape((-1,) + x.shape[2:])
  per_class = coverage(ref, flat(features), flat(labels), judge.num_classes)
  direction = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  entropy = lambda x: jnp.mean(jax.vmap(apt.knn_entropy, (0, None))(x, ENTROPY_K))
  return {"judge_entropy": entropy(features), "judge_coverage": jnp.mean(per_class),
          "judge_coverage_min": jnp.min(per_class), "judge_agreement": jnp.mean(jnp.argmax(logits, -1) == labels),
          "direction_entropy": entropy(direction)}
