"""The two-player training kernel."""

from ogan.game.config import TrainConfig, resolve
from ogan.game.train import Game, Player, TrainResult, train

__all__ = ["Game", "Player", "TrainConfig", "TrainResult", "resolve", "train"]
