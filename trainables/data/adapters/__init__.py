"""Dataset adapters: read a ReID dataset as it ships into train / query / gallery records.

``read_dataset("market1501", "/data/Market-1501-v15.09.15")`` returns a
:class:`DatasetRecords`; :func:`adapter_names` lists what is registered. Built-in adapters:
``market1501``, ``dukemtmc``, ``msmt17``, ``cuhk03np``, ``folder`` and ``synthetic``.
"""

from trainables.data.adapters import market_layout as _market_layout  # noqa: F401 - registers
from trainables.data.adapters import msmt17 as _msmt17  # noqa: F401 - registers
from trainables.data.adapters._registry import (
    SPLITS,
    Adapter,
    DatasetRecords,
    adapter_names,
    get_adapter,
    read_dataset,
    register_adapter,
)

__all__ = [
    "SPLITS",
    "Adapter",
    "DatasetRecords",
    "adapter_names",
    "get_adapter",
    "read_dataset",
    "register_adapter",
]
