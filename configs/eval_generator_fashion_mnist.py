"""Quality numbers for the shipped Fashion-MNIST generator (see the README's table).

    palmup eval-generator --config configs/eval_generator_fashion_mnist.py --workdir runs/gen_quality
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.generator = dict(path="builtin:fashion_mnist_32")
  c.data = dict(name="fashion_mnist", data_dir=ml_collections.FieldReference(None, field_type=str))
  c.eval = dict(num_samples=10000, classifier_steps=1500, batch_size=256, seed=0)
  return c
