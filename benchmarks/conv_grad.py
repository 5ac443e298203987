"""The conv gradient rules of palmup.nn.conv (per-tap, im2col) vs XLA's, same process.

    python benchmarks/conv_grad.py [--repeats 5] [--skip-gan]

Prints, for a few conv layer shapes, the time of value-and-gradient (input and weight) with XLA's
rule over that with each of palmup's rules (> 1: palmup's is faster), and the same for one full
GAN training step (D + G update, plain and R1) of configs/train_generator_fashion_mnist.py with
its `fast_weight_grad` switch (per-tap) off and on. Timings alternate between the variants and
the median is reported (benchlib.median_seconds).
"""
from __future__ import annotations

import argparse
import functools
import runpy
from pathlib import Path

import jax
import jax.numpy as jnp

import benchlib
from palmup.nn.conv import GRADS, conv2d

LAYERS = [  # (batch, size, cin, cout, stride)
    (64, 32, 32, 32, 1), (64, 16, 64, 64, 1), (64, 32, 32, 64, 2), (64, 8, 128, 128, 1), (64, 32, 1, 32, 1)]


def _median_pair(fa, fb, args_a, args_b, repeats):
  s = benchlib.median_seconds({"a": functools.partial(fa, *args_a), "b": functools.partial(fb, *args_b)}, repeats)
  return s["a"], s["b"]


def layers(repeats):
  for b, s, cin, cout, stride in LAYERS:
    x = jax.random.normal(jax.random.PRNGKey(0), (b, s, s, cin))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, cin, cout)) * 0.1
    calls = {rule: functools.partial(jax.jit(jax.grad(
        lambda x, w, r=rule: jnp.sum(conv2d(x, w, stride, grad=r) ** 2), (0, 1))), x, w) for rule in GRADS}
    t = benchlib.median_seconds(calls, repeats)
    print(f"conv {b}x{s}x{s}x{cin}->{cout} stride {stride}: "
          + ", ".join(f"{r} {t[r] * 1e3:.1f} ms" for r in GRADS)
          + "; xla / taps " + f"{t['xla'] / t['taps']:.2f}, xla / im2col {t['xla'] / t['im2col']:.2f}")


def gan_step(repeats):
  from palmup import data
  from palmup import train_generator as train
  config = runpy.run_path(str(Path(__file__).parents[1] / "configs/train_generator_fashion_mnist.py"))["get_config"]()
  ds = data.load("fashion_mnist", "test")
  images, labels = jnp.asarray(ds.images[:config.train.batch_size]), jnp.asarray(ds.labels[:config.train.batch_size])
  for r1 in (False, True):
    runs = []
    for fast in (False, True):
      config.model.fast_weight_grad = fast
      gen, disc = train.build(config, 10)
      state = train.init_state(config, gen, disc, jax.random.PRNGKey(0))
      step = jax.jit(train.make_train_step(config, gen, disc, r1))
      for _ in range(3):  # the first two steps run several times slower (measured): warm up past them
        state, _ = step(state, images, labels)
      runs.append((step, (state, images, labels)))
    xla, tap = _median_pair(runs[0][0], runs[1][0], runs[0][1], runs[1][1], repeats)
    print(f"GAN step ({'R1' if r1 else 'plain'}, batch {config.train.batch_size}): xla {xla:.3f} s, "
          f"taps {tap:.3f} s, xla / taps {xla / tap:.2f}")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--skip-gan", action="store_true")
  args = parser.parse_args()
  layers(args.repeats)
  if not args.skip_gan:
    gan_step(args.repeats)


if __name__ == "__main__":
  main()
