"""Datasets of the image workloads: the bundled 8×8 digits, and MNIST / CIFAR-10 from disk."""

from ogan.data.digits import load_digits
from ogan.data.vision import load_cifar10, load_mnist, resolve_data_dir

__all__ = ["load_cifar10", "load_digits", "load_mnist", "resolve_data_dir"]
