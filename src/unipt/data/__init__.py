"""Data layer: loaders for public dataset formats and real datasets that install offline.

from unipt.data import load_dataset, list_datasets
train = load_dataset("tuxpaint", "train", seed=0)
record = train[0]          # {"image": PIL.Image, "image_path": ..., "text": ..., ...}
"""

from unipt.data.errors import DataFormatError
from unipt.data.registry import list_datasets, load_dataset

__all__ = ["DataFormatError", "list_datasets", "load_dataset"]
