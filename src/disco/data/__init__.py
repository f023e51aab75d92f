"""Data: loaders for CSV files, images and text, datasets, client partitions, real sample data.

Loaders apply the task's fixed preprocessing and raise `disco.errors.DataError` with the file,
row and column of anything wrong. `load_for_task` picks the loader from what a path is.
"""

from disco.data.dataset import Dataset, Inputs
from disco.data.images import (
    load_image,
    load_image_folder,
    load_images_unlabelled,
    load_labelled_images,
)
from disco.data.loading import load_for_task
from disco.data.partition import Partition, dirichlet, iid, parse_partition, shards
from disco.data.samples import SamplesInfo, write_samples
from disco.data.sources import SOURCES, get_source
from disco.data.tabular import load_csv, load_csv_unlabelled
from disco.data.text import TextWindows, load_text

__all__ = [
    "SOURCES",
    "Dataset",
    "Inputs",
    "Partition",
    "SamplesInfo",
    "TextWindows",
    "dirichlet",
    "get_source",
    "iid",
    "load_csv",
    "load_csv_unlabelled",
    "load_for_task",
    "load_image",
    "load_image_folder",
    "load_images_unlabelled",
    "load_labelled_images",
    "load_text",
    "parse_partition",
    "shards",
    "write_samples",
]
