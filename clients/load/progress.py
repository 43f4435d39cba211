"""A live progress bar when tqdm is installed and wanted; otherwise nothing (the bare GPU hosts)."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "") -> Any: ...

    def close(self) -> Any: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "") -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, label: str, enabled: bool) -> Progress:
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent()
    bar: Progress = tqdm(total=total, desc=label, unit="req", file=sys.stderr, dynamic_ncols=True)
    return bar
