"""configs/evaluate.py's transfer evaluation on CIFAR-10 and CIFAR-100 (tfds, array_record).

Prepare both once, on a machine with network access and TensorFlow (tfds' CIFAR builders need it to
read the archives and encode the PNGs; palmup reads the result without it), then copy DIR/cifar10
and DIR/cifar100 (about 130 MB each) to the machine that evaluates:

    pip install tensorflow tensorflow-datasets
    tfds build cifar10 --data_dir=DIR --file_format=array_record
    tfds build cifar100 --data_dir=DIR --file_format=array_record

    palmup evaluate --config configs/evaluate_cifar.py --workdir runs/evaluate_cifar \
        --config.encoders=runs/pretrain --config.data_dir=DIR

Nothing is downloaded here: a dataset missing from data_dir fails at once with the command above.
Images (32x32 RGB, 50,000 train / 10,000 test) are resized and channel-converted to each encoder's
input; the probes see probe.train_examples (10,000) of the training images; CIFAR-100 uses the
100 fine labels. data_dir defaults to $TFDS_DATA_DIR or ~/tensorflow_datasets.
"""
import runpy
from pathlib import Path


def get_config():
  c = runpy.run_path(str(Path(__file__).with_name("evaluate.py")))["get_config"]()
  c.datasets = "cifar10,cifar100"
  return c
