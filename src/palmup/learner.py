"""The representation learner: encoder + projection head trained with NT-Xent on pairs of views,
plus an online linear probe on stop-gradient features (monitoring only: its gradient never reaches
the encoder).

Views (`contrastive_views`) come from replayed sequences o_0..o_{L-1}:
  augment = "none": (o_0, o_offset), the paper's temporal pairs, no augmentation;
  augment = "add":  (aug(o_0), aug(o_offset)), augmentation on top of temporal pairs;
  augment = "only": (aug(o_0), aug'(o_0)), SimCLR's augmentation pairs, no temporal signal.
Temporal pairs that cross an episode boundary are dropped as anchors (`valid`).
"""
from __future__ import annotations

import dataclasses
import json

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from palmup import checkpoints
from palmup import workdirs
from palmup.augment import augment
from palmup.data import transforms
from palmup.losses import ntxent
from palmup.nn.encoders import ProjectionHead, make_encoder
from palmup.replay import same_episode

AUGMENT_MODES = ("none", "add", "only")
DTYPES = ("float32", "bfloat16")  # learner.dtype: the compute dtype of encoder and head


class Representation(nn.Module):
  """images [B, H, W, C] in [-1, 1] -> (features [B, D], projections [B, P], probe logits [B, K])."""
  encoder: nn.Module
  head: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, x):
    h = self.encoder(x)
    return h, self.head(h), nn.Dense(self.num_classes, name="probe")(jax.lax.stop_gradient(h))


@flax.struct.dataclass
class LearnerState:
  params: dict
  opt_state: optax.OptState


def view(key, obs, mode: str, crop_min: float, jitter: float) -> jax.Array:
  """uint8 obs [B, H, W, C] -> the learner's view of each frame, float [B, H, W, C] in [-1, 1]: the
  frame itself for mode "none", a random augmentation of it otherwise."""
  images = transforms.to_float(obs)
  return images if mode == "none" else augment(key, images, crop_min, jitter)


def contrastive_views(key, obs, first, offset: int, mode: str, crop_min: float, jitter: float):
  """obs uint8 [B, L, H, W, C], first [B, L] -> (view_a, view_b) float [B, H, W, C], valid [B]."""
  ka, kb = jax.random.split(key)
  a = view(ka, obs[:, 0], mode, crop_min, jitter)
  if mode == "only":
    return a, view(kb, obs[:, 0], mode, crop_min, jitter), jnp.ones(a.shape[0], bool)
  return a, view(kb, obs[:, offset], mode, crop_min, jitter), same_episode(first, offset)


@dataclasses.dataclass(frozen=True)
class Learner:
  """Pure init / features / update for the representation. config: the `learner` ConfigDict;
  platform: the backend it is compiled for ("cpu", "gpu", "tpu"; None: the default backend), which
  an "auto" conv gradient rule follows (palmup.nn.conv.rule_for)."""
  config: object
  num_classes: int
  platform: str | None = None

  @property
  def model(self) -> Representation:
    c = self.config
    return Representation(make_encoder(c.encoder, self.platform), ProjectionHead(c.head_hidden, c.head_out),
                          self.num_classes)

  @property
  def optimizer(self):
    return optax.adamw(self.config.lr, weight_decay=self.config.weight_decay)

  def init(self, key, obs_shape) -> LearnerState:
    params = self.model.init(key, jnp.zeros((1,) + tuple(obs_shape)))
    return LearnerState(params, self.optimizer.init(params))

  def apply(self, params, images):
    """images float [B, H, W, C] -> (features, projections, probe logits), float32. With
    config.dtype="bfloat16" the float32 parameters and the images are cast to bfloat16 for the
    forward pass (gradients flow back to float32 parameters, optimiser state stays float32)."""
    dtype = jnp.dtype(self.config.dtype)
    if dtype != jnp.float32:
      params = jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
      images = images.astype(dtype)
    return jax.tree.map(lambda a: a.astype(jnp.float32), self.model.apply(params, images))

  def features(self, params, obs) -> jax.Array:
    """uint8 obs [B, H, W, C] (or float views in [-1, 1]) -> encoder features [B, D], detached (for
    the explorer and probes)."""
    x = obs if jnp.issubdtype(obs.dtype, jnp.floating) else transforms.to_float(obs)
    return jax.lax.stop_gradient(self.apply(params, x)[0])

  def encode(self, params, images) -> jax.Array:
    """float images [B, H, W, C] in [-1, 1] -> encoder features [B, D], differentiable in the images
    and never in the parameters (the gradient explorer's path through the encoder)."""
    return self.apply(jax.lax.stop_gradient(params), images)[0]

  def update(self, state: LearnerState, view_a, view_b, labels, valid):
    """One step on NT-Xent(view_a, view_b) + the probe's cross-entropy on view_a's labels.
    -> (state, metrics, (features of view_a, of view_b) [B, D] each: the encoder's output at the
    parameters before the step, detached, for whoever needs these frames' features)."""
    n = view_a.shape[0]

    def loss_fn(params):
      h, z, logits = self.apply(params, jnp.concatenate([view_a, view_b]))
      contrastive = ntxent(z[:n], z[n:], self.config.temperature, valid, self.config.negatives)
      probe = optax.softmax_cross_entropy_with_integer_labels(logits[:n], labels).mean()
      accuracy = jnp.mean(jnp.argmax(logits[:n], -1) == labels)
      return contrastive + probe, ({"ntxent": contrastive, "probe_loss": probe, "probe_acc": accuracy,
                                    "feature_std": jnp.mean(jnp.std(h[:n], axis=0))}, h)

    grads, (metrics, h) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    metrics["valid_pairs"] = jnp.mean(valid)
    h = jax.lax.stop_gradient(h)
    return LearnerState(optax.apply_updates(state.params, updates), opt_state), metrics, (h[:n], h[n:])


def save_encoder(path, learner: Learner, params, obs_shape):
  """Writes the learner's config, input shape and parameters (orbax): what evaluation and RL
  transfer read (load_encoder), without importing the trainer. learner.json is written last, so its
  presence says the encoder is whole (palmup.sweep reads it as a finished run)."""
  path = workdirs.path(path)
  path.mkdir(parents=True, exist_ok=True)
  spec = {"learner": learner.config.to_dict(), "num_classes": learner.num_classes, "obs_shape": list(obs_shape)}
  checkpoints.write_params(path / "params", params)  # every process of a multi-process run calls orbax's save
  if jax.process_index() == 0:
    (path / "learner.json").write_text(json.dumps(spec, indent=2) + "\n")


def load_encoder(path) -> tuple[Learner, dict, tuple[int, int, int]]:
  """(learner, params, obs_shape) from a directory written by save_encoder (workdir/encoder)."""
  import ml_collections
  hint = "give a `palmup pretrain` workdir's encoder/ (rerun the pretraining to rewrite a damaged one)"
  path = workdirs.existing_dir(path, "encoder directory", hint)
  spec = workdirs.read_json(path / "learner.json", "encoder spec", hint, keys=("learner", "num_classes", "obs_shape"))
  learner_config = {"dtype": "float32", **spec["learner"]}  # encoders saved before learner.dtype existed
  learner = Learner(ml_collections.ConfigDict(learner_config), spec["num_classes"])
  obs_shape = tuple(spec["obs_shape"])
  abstract = jax.eval_shape(lambda k: learner.init(k, obs_shape).params, jax.random.PRNGKey(0))
  return learner, checkpoints.read_params(path / "params", abstract, "encoder", hint), obs_shape
