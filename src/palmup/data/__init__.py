"""Labelled image datasets: built-in offline ones and any prepared tfds dataset.

    ds = palmup.data.load("fashion_mnist", "train")      # ArrayDataset
    for images, labels in palmup.data.batches(ds, 128, seed=0): ...

`images` are uint8 [B, H, W, C] (NHWC), `labels` int32 [B].
"""
from palmup.data.datasets import (ArrayDataset, BUILTIN, batches, load)

__all__ = ["ArrayDataset", "BUILTIN", "batches", "load"]
