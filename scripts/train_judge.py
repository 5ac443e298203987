"""Trains the exploration judge (palmup.evaluators.exploration) once and writes it where palmup
ships it; the shipped one was made by

    .venv/bin/python scripts/train_judge.py --out src/palmup/evaluators/assets/fashion_mnist_32

The recipe is generator_quality's classifier (3 strided convs, 128-d features, Adam 1e-3) on the
real Fashion-MNIST training split at 32x32; judge.json records its test accuracy.
"""
import argparse

import jax
import numpy as np

from palmup.data import datasets
from palmup.evaluators import exploration, generator_quality


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True)
  parser.add_argument("--dataset", default="fashion_mnist")
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  train, test = (datasets.load(args.dataset, s) for s in ("train", "test"))
  channels = train.images.shape[-1]
  module, params = generator_quality.train_classifier(train, args.size, channels, args.steps, args.batch_size,
                                                      args.seed)
  judge = exploration.Judge(module, params, args.size, channels, args.dataset)
  logits = jax.jit(lambda x: judge.apply(x)[0])
  pred = np.concatenate([np.asarray(logits(test.images[i:i + 1000])).argmax(-1) for i in range(0, len(test), 1000)])
  accuracy = float(np.mean(pred == test.labels))
  exploration.save(args.out, judge, {"trained_with": {"steps": args.steps, "batch_size": args.batch_size,
                                                      "seed": args.seed, "test_accuracy": accuracy}})
  print(f"judge: test accuracy {accuracy:.4f} on {args.dataset}; written to {args.out}")


if __name__ == "__main__":
  main()
