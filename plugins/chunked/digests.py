"""Digests of a whole source, computed beside the chunking of it."""

import hashlib
import queue
import threading


class WholeDigest:
    """Digests of a whole source computed in the same pass as its chunks: the windows are read in order, each handed
    here before it is cut, so the source is read once rather than once to hash it and once to store it. The hashing
    runs in a thread of its own (hashlib releases the GIL), beside the chunks' own hashing and compression."""

    def __init__(self, algorithms: set[str]) -> None:
        self._hashers = {name: hashlib.new(name) for name in sorted(algorithms)}
        self._windows: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread: threading.Thread | None = None

    def update(self, data: bytes) -> None:
        """Feed the next window (from the one worker thread that reads the source, in order)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._hash, name="whole-digest", daemon=True)
            self._thread.start()
        self._windows.put(data)

    def _hash(self) -> None:
        while (data := self._windows.get()) is not None:
            for hasher in self._hashers.values():
                hasher.update(data)

    def close(self) -> None:
        """Wait until every window fed is hashed, and stop the thread (blocking: call it off the event loop)."""
        if self._thread is not None:
            self._windows.put(None)
            self._thread.join()
            self._thread = None

    def hexdigests(self) -> dict[str, str]:
        """The digests, by algorithm, of everything fed so far."""
        self.close()
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}
