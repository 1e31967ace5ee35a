"""Metrics: the fast Fréchet distance, FID feature extractors, and FID orchestration.

``InceptionFeatures`` imports pytorch-fid (and torchvision) only when constructed.
"""

from ogan.metrics.digits_classifier import DigitsFeatures, class_metrics, digits_metrics
from ogan.metrics.fid import FeatureExtractor, fid_from_samples, reference_stats
from ogan.metrics.frechet import RunningGaussianStats, frechet_distance, gaussian_stats
from ogan.metrics.inception import InceptionFeatures, find_inception_weights

__all__ = [
    "DigitsFeatures",
    "FeatureExtractor",
    "InceptionFeatures",
    "RunningGaussianStats",
    "class_metrics",
    "digits_metrics",
    "fid_from_samples",
    "find_inception_weights",
    "frechet_distance",
    "gaussian_stats",
    "reference_stats",
]
