"""The two-player training kernel."""

from ogan.game.config import GAME_OPTIMIZER_KEYS, GAME_OPTIONS, TrainConfig, resolve
from ogan.game.game import Game, Player
from ogan.game.population_train import train_population
from ogan.game.train import TrainResult, train

__all__ = [
    "GAME_OPTIMIZER_KEYS", "GAME_OPTIONS", "Game", "Player", "TrainConfig", "TrainResult",
    "resolve", "train", "train_population",
]  # fmt: skip
