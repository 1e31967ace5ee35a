"""ogan: GAN optimizers on a fused orthogonal-projection kernel, and a benchmark harness for them.

>>> import ogan
>>> opt = ogan.optim.build("optimistic-adam", model.parameters(), lr=2e-4, betas=(0.5, 0.9))
>>> result = ogan.train("mog-ring", {"name": "adam", "lr": 2e-4, "ortho": "weights"}, steps=2000)
>>> results = ogan.train_population("mog-ring", "adam", seeds=[0, 1, 2, 3])  # one program
"""

from ogan import optim
from ogan.errors import ConfigError, MissingDataError, OganError
from ogan.game import TrainConfig, TrainResult, train, train_population
from ogan.projection import ProjectionStats, orthogonalize_

__version__ = "0.1.0"
__all__ = [
    "ConfigError", "MissingDataError", "OganError", "ProjectionStats", "TrainConfig",
    "TrainResult", "__version__", "optim", "orthogonalize_", "train", "train_population",
]  # fmt: skip
