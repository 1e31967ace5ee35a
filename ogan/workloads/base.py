"""The narrow interface between the training kernel and a workload.

A workload is a two-player game: it builds the players, samples batches, scores the players, and
names its metrics. The kernel (``ogan.game``) owns everything about optimisation. A workload's
options are a frozen dataclass (``Options``) so that unknown keys and bad values are caught
before anything runs.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ogan.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """What a metric measures, which way is better, and the range the statistics must respect.

    A run records all of it (``summary["metrics"]``): the report reads it from there.
    """

    description: str
    higher_is_better: bool = False
    bounds: tuple[float | None, float | None] = (None, None)
    """The least and greatest values the metric can take (None: unbounded): no interval the
    report draws leaves them, e.g. (0, None) for a distance, (0, 1) for a fraction."""
    log_scale: bool = False
    """Positive and spread multiplicatively (FID, distances, KL): summarised by the geometric
    mean with a t-interval on the log scale, and compared by log ratio (so that "10% better"
    means the same at FID 5 as at FID 500, and intervals stay above zero)."""
    margin: float | None = None
    """The equivalence margin δ, declared before any run: the smallest difference that matters.
    In the metric's units (modes: 0.5 mode), or for a ``log_scale`` metric a relative change
    (0.1: the geometric-mean ratio within [1/1.1, 1.1]). Declared here, never fitted to the
    data, because a margin taken from the results (10% of the base's mean, once) moves with
    them: ±0 when the base scored 0, which made two identical zeros "equivalent". None: the
    report gives this metric no *equivalent* verdict, only better / worse / undecided."""

    def __post_init__(self) -> None:
        lo, hi = self.bounds
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"metric bounds must have lo < hi, got {self.bounds}")
        if self.margin is not None and not (0 < self.margin < float("inf")):
            raise ValueError(f"a metric's margin must be finite and > 0, got {self.margin}")
        if self.log_scale and (lo is None or lo < 0):
            raise ValueError("a log-scale metric is positive: give it bounds=(0, ...)")


@dataclass(frozen=True)
class Batch:
    """One minibatch: real samples (None for games without data) and generator noise."""

    real: Tensor | None
    z: Tensor | None


@dataclass(frozen=True)
class NoOptions:
    pass


class Workload(abc.ABC):
    """A two-player game the kernel can train.

    Subclasses set the class attributes and implement :meth:`build_players`, :meth:`sample` and
    :meth:`evaluate`. ``G(batch.z)`` gives fakes; ``D(x)`` gives the discriminator's outputs on
    which the game's loss is computed.

    ``metrics``, ``primary_metric`` and ``target`` belong to the instance: a class attribute is
    their default, and ``__init__`` may change them from the options (seed-mlp on MNIST measures
    Inception FID). Read them from a workload object, or from what a run recorded of them
    (``summary["metrics"]`` and ``summary["target"]``), never from the class.
    """

    name: ClassVar[str]
    """How messages name it (default: its import path ``"module:Class"``)."""
    description: ClassVar[str]
    """One line for ``bench list`` (default: the docstring's first line)."""
    metrics: dict[str, Metric]
    """What :meth:`evaluate` returns, by name (per instance: options may change it)."""
    primary_metric: str
    target: float
    """Threshold on the primary metric for "time to target" (reached when at least as good)."""
    Options: ClassVar[type] = NoOptions
    default_scheme: ClassVar[str] = "alternating"
    default_loss: ClassVar[str | None] = "non-saturating"
    """None for games with a fixed objective (:meth:`objective` instead of a GAN loss)."""
    default_steps: ClassVar[int] = 1000
    default_eval_every: ClassVar[int] = 100
    default_batch_size: ClassVar[int] = 64
    has_real_data: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A user's workload need not name or describe itself: its import path and docstring.
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = f"{cls.__module__}:{cls.__qualname__}"
        if "description" not in cls.__dict__:
            cls.description = ((cls.__doc__ or "").strip().splitlines() or [cls.name])[0]

    def __init__(self, options: Any, device: torch.device):
        self.options = options
        self.device = device

    @classmethod
    def parse_options(cls, **options: Any) -> Any:
        """Build ``Options`` from keyword arguments; unknown keys or bad values are ConfigError."""
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - fields)
        if unknown:
            valid = ", ".join(sorted(fields)) or "none"
            raise ConfigError(
                f"Unknown option(s) {', '.join(unknown)} for workload {cls.name!r}; valid: {valid}"
            )
        try:
            parsed = cls.Options(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"workload {cls.name!r}: {exc}") from None
        cls.check_options(parsed)
        return parsed

    @classmethod
    def check_options(cls, options: Any) -> None:
        """Validate values (and that local files exist) without building anything."""
        del options  # a hook: the default has nothing to check

    @abc.abstractmethod
    def build_players(self) -> tuple[nn.Module, nn.Module]:
        """Generator and discriminator, initialised from the global RNG (seeded by the caller)."""

    @abc.abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A training batch drawn with ``generator`` (on the workload's device)."""

    def sample_streams(self, batch_size: int, streams: Any) -> Batch:
        """A training batch per member from counter-based streams (the game option
        ``streams="counter"``, :class:`ogan.game.streams.Streams`): the same draws as
        :meth:`sample` makes, through ``streams.randint(high, shape)`` and
        ``streams.normal(shape)``, whose results carry the members' dimensions first (none for
        one run), so one call draws every member's batch. Optional: a workload without it
        trains with ``streams="torch"`` only."""
        raise NotImplementedError

    @abc.abstractmethod
    def evaluate(self, G: nn.Module, D: nn.Module, generator: torch.Generator) -> dict[str, float]:
        """Every metric in :attr:`metrics`; called in eval mode under ``no_grad``."""

    def objective(self, d_fake: Tensor) -> tuple[Tensor, Tensor]:
        """(D's loss, G's loss) for games without a GAN loss (``default_loss = None``)."""
        raise NotImplementedError

    def metric_info(self) -> dict[str, Any]:
        """How the metrics were computed (extractor, its hash, sample counts), for the record."""
        return {}
