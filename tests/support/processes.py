"""Looking at processes through /proc: which children a process has, and whether one still runs."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> set[int]:
    """PIDs of the live processes whose parent is `pid` (e.g. a server's worker processes)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
