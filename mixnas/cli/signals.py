"""SIGTERM as Ctrl-C, for the commands that run until stopped (``train``, ``dashboard --serve``).

A scheduler or ``kill`` ends a job with SIGTERM; Python's default would end the process at once, without the
``finally`` blocks that write a training run's metrics or stop optuna-dashboard. Raising KeyboardInterrupt
instead takes the same way out as Ctrl-C, and ``mixnas`` reports it as "interrupted" (exit status 130).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt; the previous handler is restored afterwards. Only the
    main thread may install a handler: elsewhere (an embedding caller's thread) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
