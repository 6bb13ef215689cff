"""`SyncSummary`: what a sync did, counted by both directions and shown by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SyncSummary:
    """What a sync did. `conflicts` are the conflict copies made (workspace paths);
    `skipped` counts the FIFOs, sockets and device nodes the server listed, which
    a replica does not create (nor does it push its own).

    `bytes_expected` is what the run has set out to move so far (received
    plus sent): each batch adds the bytes it will download (inline data and
    the distinct chunks no local copy has) or upload (the chunks the server
    lacks) before moving them, so a progress bar has a total and an ETA that
    grows as the change list is read.
    """

    downloaded: int = 0
    uploaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    bytes_expected: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    cursor: str | None = None

    def __str__(self) -> str:
        parts = [
            f"{self.downloaded} in", f"{self.uploaded} out", f"{self.deleted_local} deleted here",
            f"{self.deleted_remote} deleted there", f"{_human(self.bytes_received)} received",
            f"{_human(self.bytes_sent)} sent",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (FIFOs, sockets, devices)")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict(s): " + ", ".join(self.conflicts[:5]))
        if self.refused:
            parts.append(f"{len(self.refused)} refused: " + ", ".join(p for p, _ in self.refused[:5]))
        return "; ".join(parts)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
