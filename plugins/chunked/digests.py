"""Digests of a whole source, computed beside the chunking of it."""

import hashlib
import queue
import threading


class WholeDigest:
    """Digests of a whole source computed in the same pass as its chunks: each window read is handed here with its
    offset before it is cut, so the source is read once rather than once to hash it and once to store it. Windows
    may arrive out of order (several are read at once); the hashing runs in a thread of its own (hashlib releases
    the GIL), in offset order, beside the chunks' own hashing and compression."""

    def __init__(self, algorithms: set[str]) -> None:
        self._hashers = {name: hashlib.new(name) for name in sorted(algorithms)}
        self._windows: queue.Queue[tuple[int, bytes | bytearray] | None] = queue.Queue(maxsize=4)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._hashed = 0
        self._gap: str | None = None

    def update(self, offset: int, data: bytes | bytearray) -> None:
        """Feed the window at `offset` (from any worker thread; every window of the source is fed exactly once, and
        fewer than `4 + windows in flight` may wait for one before them)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._hash, name="whole-digest", daemon=True)
                self._thread.start()
        self._windows.put((offset, data))

    def _hash(self) -> None:
        waiting: dict[int, bytes | bytearray] = {}
        while (window := self._windows.get()) is not None:
            offset, data = window
            waiting[offset] = data
            while self._hashed in waiting:
                data = waiting.pop(self._hashed)
                for hasher in self._hashers.values():
                    hasher.update(data)
                self._hashed += len(data)
        if waiting:
            # A pass cut short (cancelled, past its deadline) stops here and asks for no digest; one that asks for
            # its digests with a window missing is a bug, which `hexdigests` raises (not this thread, where nobody
            # would hear it).
            self._gap = f"windows at {sorted(waiting)} were fed, but never the one at {self._hashed}"

    def close(self) -> None:
        """Wait until every window fed is hashed, and stop the thread (blocking: call it off the event loop)."""
        if self._thread is not None:
            self._windows.put(None)
            self._thread.join()
            self._thread = None

    def hexdigests(self) -> dict[str, str]:
        """The digests, by algorithm, of everything fed so far; `RuntimeError` if a window before the last was never
        fed (the digests would not be of the source)."""
        self.close()
        if self._gap is not None:
            raise RuntimeError(self._gap)
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}
