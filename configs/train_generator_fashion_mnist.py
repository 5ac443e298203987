"""Trains the shipped Fashion-MNIST generator (32x32 grey, 10 classes) on a CPU.

    palmup train-generator --config configs/train_generator_fashion_mnist.py --workdir runs/gen_fmnist
"""
import ml_collections

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(name="fashion_mnist", data_dir=ml_collections.FieldReference(None, field_type=str),
                channels=1, class_names=CLASS_NAMES)
  c.model = dict(
      resolution=32,
      latent_dim=64,            # z size = the latent environment's action size
      w_dim=128,
      mapping_layers=2,
      channels=(128, 128, 64, 32),    # generator widths at 4, 8, 16, 32
      d_channels=(128, 128, 64, 32),  # discriminator widths at 4, 8, 16, 32
      fast_weight_grad=True,    # per-tap conv weight gradient (palmup.nn.conv, grad="taps"); see benchmarks/conv_grad.py
  )
  c.train = dict(batch_size=64, steps=4000, lr=0.002, beta1=0.0, r1_gamma=0.1, r1_every=16,
                 ema_kimg=10.0, ema_rampup=0.05)
  c.log_every = 50
  c.sample_every = 500
  c.checkpoint_every = 500
  c.eval = dict(enabled=True, num_samples=10000, classifier_steps=1500, batch_size=256, seed=0)
  return c
