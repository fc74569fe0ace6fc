"""A second process that checks parts of a large layer while the importing one checks others.

Started as ``python -m inventory.importer._apart`` (never by re-running the caller's
script, as multiprocessing's spawn would), it reads one pickled message on standard
input — what every part needs, and the parts to check — and writes back one pickled
result per part, in order, on standard output. Pickles pass only between this process
and the one that started it.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any


class Worker:
    """The second process: started at once, fed once by ``give``; ``result(key)`` waits.

    Started before the caller has its message ready, the process loads the importer
    meanwhile (~1 s). A result is what the task returned, or the exception it raised (an
    InventoryError for the caller to raise in file order); with ``keep``, results are
    asked for in the order of ``parts``. A worker that stops without answering (killed,
    out of memory) leaves its parts to the caller: ``result`` then returns ``missing``.
    """

    def __init__(self):
        self.keys: set = set()  # the parts it takes
        self.results: dict[Any, Any] = {}
        self._ready = threading.Condition()
        self._done = False
        # results read and not yet asked for, at most (None: all): a large result waits
        # in the process, which waits to write it, so memory holds ``keep`` of them
        self._keep: int | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inventory.importer._apart"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def give(
        self, task: Callable, shared: tuple, parts: list[tuple[Any, tuple]], keep: int | None = None
    ) -> Worker:
        """Send the one message: ``task(*shared, *args)`` for each ``(key, args)`` of ``parts``."""
        self.keys = {key for key, _ in parts}
        with self._ready:
            self._keep = keep
        try:
            pickle.dump((task, shared, parts), self.process.stdin, protocol=5)
            self.process.stdin.close()
        except (BrokenPipeError, OSError):  # it stopped at once: the caller checks all
            pass
        return self

    def _read(self) -> None:
        try:
            while True:
                with self._ready:
                    while self._keep is not None and len(self.results) >= self._keep:
                        self._ready.wait()
                key, value = pickle.load(self.process.stdout)
                with self._ready:
                    self.results[key] = value
                    self._ready.notify_all()
        except Exception:  # the end of its output, whatever ended it
            with self._ready:
                self._done = True
                self._ready.notify_all()

    def result(self, key, missing: Any = None) -> Any:
        """Return the part's result or exception (once), or ``missing`` if it never came."""
        with self._ready:
            while key not in self.results and not self._done:
                self._ready.wait()
            self._ready.notify_all()  # room for the next
            return self.results.pop(key, missing)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """End the process (done or not) and its reader."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        try:  # never given a message (the import stopped first)
            self.process.stdin.close()
        except OSError:
            pass
        with self._ready:
            self._keep = None  # the reader waits for room no more: it reads to the end
            self._ready.notify_all()
        self._reader.join()
        self.process.stdout.close()


def _serve() -> None:
    import inventory.importer  # noqa: F401 - loaded while the caller prepares the message
    from inventory.errors import InventoryError

    task, shared, parts = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    for key, args in parts:
        try:
            value = task(*shared, *args)
        except InventoryError as exc:
            value = exc
        pickle.dump((key, value), out, protocol=5)
        out.flush()
        if isinstance(value, InventoryError):
            return  # the caller raises the first failing part's error: no more needed


if __name__ == "__main__":
    _serve()
