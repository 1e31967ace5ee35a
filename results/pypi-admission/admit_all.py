"""Every optimizer class pytorch-optimizer exports, through ogan's population admission check.

Run from the repository root: ``python results/pypi-admission/admit_all.py > OUT.tsv``. Each
class is checked at its own default learning rate (``ogan.optim.admit(name, {})``): admitted,
refused (with the member difference), or an error its runs would stop on too.
"""

import collections
import warnings

import pytorch_optimizer as po
import torch

from ogan import optim
from ogan.errors import ConfigError

warnings.filterwarnings("ignore")
names = sorted(
    n
    for n in dir(po)
    if isinstance(getattr(po, n), type) and issubclass(getattr(po, n), torch.optim.Optimizer)
)
outcomes = {}
for name in names:
    try:
        a = optim.admit(f"pytorch_optimizer:{name}", {})
        detail = f"max rel. diff {a.max_difference:.2g}" if a.admitted else a.reason
        outcomes[name] = ("admitted" if a.admitted else "refused", detail)
    except ConfigError as exc:
        outcomes[name] = ("error", str(exc).split(": ", 1)[-1][:150])
print("class\toutcome\treason")
for name, (kind, reason) in outcomes.items():
    print(f"{name}\t{kind}\t{reason}")
print(collections.Counter(kind for kind, _ in outcomes.values()))
