"""Fine-tuning protocol: the encoder (unfrozen) plus a new linear classifier, trained with labels.

Cross-entropy, AdamW, `steps` minibatch steps on the (subsampled) training split; top-1 on the test
split. Images are resized to the encoder's input shape once, up front (transforms.prepare_all).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from palmup.data import transforms


def fine_tune(learner, params, obs_shape, train_images, train_labels, test_images, test_labels,
              num_classes: int, cfg, seed: int = 0) -> dict:
  """-> {"test_accuracy", "final_loss"} after cfg.steps steps of batch cfg.batch_size at cfg.lr."""
  features = lambda p, obs: learner.apply(p, transforms.to_float(obs))[0]
  dim = jax.eval_shape(features, params, jnp.zeros((1,) + tuple(obs_shape), jnp.uint8)).shape[-1]
  variables = {"encoder": params, "head": (jnp.zeros((dim, num_classes)), jnp.zeros(num_classes))}
  opt = optax.adamw(cfg.lr, weight_decay=cfg.weight_decay)

  def logits_fn(v, obs):
    return features(v["encoder"], obs) @ v["head"][0] + v["head"][1]

  @jax.jit
  def step(v, opt_state, obs, y):
    loss, grads = jax.value_and_grad(
        lambda v: optax.softmax_cross_entropy_with_integer_labels(logits_fn(v, obs), y).mean())(v)
    updates, opt_state = opt.update(grads, opt_state, v)
    return optax.apply_updates(v, updates), opt_state, loss

  train_obs, test_obs = (transforms.prepare_all(x, obs_shape) for x in (train_images, test_images))
  rng = np.random.default_rng(seed)
  opt_state, loss = opt.init(variables), jnp.zeros(())
  for _ in range(cfg.steps):
    idx = rng.choice(len(train_obs), min(cfg.batch_size, len(train_obs)), replace=False)
    variables, opt_state, loss = step(variables, opt_state, train_obs[idx], train_labels[idx])
  predict = jax.jit(lambda v, obs: jnp.argmax(logits_fn(v, obs), -1))
  preds = np.concatenate([np.asarray(predict(variables, test_obs[i:i + 1000])) for i in range(0, len(test_obs), 1000)])
  return {"test_accuracy": float(np.mean(preds == test_labels)), "final_loss": float(loss)}
