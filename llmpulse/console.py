"""The command line's two consoles, shared by every command."""

from __future__ import annotations

import shutil

from rich.console import Console

# Output that is not a terminal (CI logs, `make demo | tee`, a pager) would get rich's 80 columns, which fold
# the findings and alert tables word by word; COLUMNS, when set, still wins.
_PIPED_COLUMNS = 160
_WIDTH = shutil.get_terminal_size(fallback=(_PIPED_COLUMNS, 24)).columns

console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)
