"""Progress bars on stderr (tqdm); shown only when stderr is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm


def progress(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    file: TextIO | None = None,
) -> Any:
    """A tqdm bar named `desc` on `file` (stderr); no output at all when that is not a terminal."""
    file = file or sys.stderr
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=file,
        disable=not file.isatty(),
        dynamic_ncols=True,
    )
