"""The two-player training kernel."""

from ogan.game.config import TrainConfig, resolve
from ogan.game.population_train import train_population
from ogan.game.train import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "resolve", "train", "train_population"]
