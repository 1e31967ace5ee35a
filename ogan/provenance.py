"""Where a workload's or optimizer's code came from, for the run record.

A report must say exactly what ran. For ogan's own code that is ogan's version (the record also
holds the git commit); for an installed package its distribution and version; for a file in no
distribution (a script next to the sweep, an editable install) its sha256. The digest is
recorded in every case: it is what tells two edits of the same version apart.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata as metadata
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Origin:
    """Where a name's code came from: what a run record stores so that a report says what ran.

    ``via`` is ``"registered"`` (in ogan's registry), ``"entry point"``, ``"import path"`` or
    ``"object"`` (passed by value). ``distribution``/``version`` name the installed package
    that holds the defining file (None when it is in none, e.g. a script next to the sweep);
    ``sha256`` is that file's digest, recorded either way.
    """

    via: str
    target: str  # "package.module:Attribute"
    distribution: str | None = None
    version: str | None = None
    file: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for listings and reports: how the name was found and which code it is."""
        if self.distribution is not None:
            code = f"{self.distribution} {self.version}"
        elif self.sha256 is not None:
            code = f"{self.file} sha256:{self.sha256[:12]}"
        else:
            code = "no source file"
        return f"{self.via} {self.target} ({code})"


def find_origin(via: str, target: str, obj: Any) -> Origin:
    """The :class:`Origin` of ``obj``, found ``via`` a name that stands for ``target``."""
    module_name = getattr(obj, "__module__", "") or ""
    file = getattr(sys.modules.get(module_name), "__file__", None)
    digest = None if file is None else _sha256(Path(file))
    if module_name.partition(".")[0] == "ogan":  # ogan's own code; the record has its commit
        from ogan import __version__

        return Origin(via, target, "ogan", __version__, file, digest)
    dist = None if file is None else _distribution_of(Path(file).resolve(), module_name)
    return Origin(
        via,
        target,
        distribution=None if dist is None else dist[0],
        version=None if dist is None else dist[1],
        file=file,
        sha256=digest,
    )


@functools.cache
def _distribution_of(file: Path, module: str) -> tuple[str, str] | None:
    """(name, version) of the installed distribution whose RECORD lists this file, if any.

    Only files under a ``site-packages`` directory can be listed (an editable install lists
    none of its sources: such code is recorded by its digest, which is what identifies code that
    can change under one version). The distribution named like the top-level package is tried
    first; ``packages_distributions`` (which reads every RECORD, ~1 s) only when that fails.
    """
    if not {"site-packages", "dist-packages"} & set(file.parts):
        return None
    top = module.partition(".")[0]
    for name in _candidates(top):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        root = Path(str(dist.locate_file(""))).resolve()
        if file.is_relative_to(root) and file.relative_to(root).as_posix() in _files(name):
            return dist.metadata["Name"], dist.version
    return None


@functools.cache
def _files(distribution: str) -> frozenset[str]:
    """The files a distribution's RECORD lists (torch's holds ~20k: read once per process)."""
    return frozenset(str(f) for f in metadata.distribution(distribution).files or [])


def _candidates(top: str) -> Iterator[str]:
    yield top
    yield from _packages_distributions().get(top, [])


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


@functools.cache
def _sha256(file: Path) -> str | None:
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return None
