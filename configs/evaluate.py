"""Transfer of pretrained encoders to the built-in real datasets, against random encoders.

    palmup evaluate --config configs/evaluate.py --workdir runs/evaluate --config.encoders=runs/pretrain

Probes: logistic (reported), ridge (cross-check), few-shot ridge with 1/5/10/25 images per class,
each for the encoders and the same architecture at 3 random inits. Fine-tuning (encoder unfrozen):
--config.fine_tune.enabled=True.
"""
import ml_collections

from palmup.evaluate import probe_config


def get_config():
  c = ml_collections.ConfigDict()
  c.encoders = "runs/pretrain"  # comma-separated pretrain workdirs or encoder/ directories
  c.datasets = "fashion_mnist,mnist5k,digits"  # built-in, or tfds names prepared in data_dir
  c.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.probe = probe_config()
  c.fine_tune = dict(enabled=False, steps=500, batch_size=256, lr=1e-3, weight_decay=1e-4)
  return c
