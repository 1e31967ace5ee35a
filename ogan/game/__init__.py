"""The two-player training kernel."""

from ogan.game.config import GAME_OPTIMIZER_KEYS, GAME_OPTIONS, TrainConfig, resolve
from ogan.game.train import TrainResult, train

__all__ = ["GAME_OPTIMIZER_KEYS", "GAME_OPTIONS", "TrainConfig", "TrainResult", "resolve", "train"]
