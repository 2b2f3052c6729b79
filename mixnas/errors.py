"""User-facing errors.

Every mistake a user can make (a malformed space, an impossible architecture, an unknown model name, a
missing dataset) raises a subclass of :class:`MixnasError`. The CLI prints ``str(err)`` on one line and
exits with status 2; only genuine bugs produce a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MixnasError(Exception):
    """A mistake in the user's input, reported as one clear line."""

    exit_code = 2


class ArchError(MixnasError):
    """An architecture configuration that cannot be built (bad value, broken validity rule)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class UnknownNameError(MixnasError):
    """A name (model, mixer, dataset ...) that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class DiskFullError(MixnasError):
    """The disk (or quota) filled while a run folder or a study was being written."""


def disk_full_cause(err: BaseException | None) -> BaseException | None:
    """The error in ``err``'s chain (itself or one it was raised from) that says the disk or quota is full: an
    ``OSError`` (no space, quota, file too large) or a database's own words for it (SQLite: "database or disk is
    full"), however deep a library wrapped it; None when there is none."""
    import errno

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return err
        text = str(err)
        if "database or disk is full" in text or "No space left on device" in text:
            return err
        err = err.__cause__ or err.__context__
    return None
