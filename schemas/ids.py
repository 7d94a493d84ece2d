"""Identifiers: UUIDv7 (RFC 9562), time-ordered so that ids sort by creation and index well."""

import os
import threading
import time
import uuid


class _Uuid7Clock:
    """Keeps ids made in the same millisecond in creation order within this process (a 12-bit counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def next(self) -> tuple[int, int]:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
            return self._last_ms, self._counter


_clock = _Uuid7Clock()


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7: 48 bits of Unix milliseconds, a 12-bit counter, then 62 random bits."""
    ms, counter = _clock.next()
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | random_bits
    return uuid.UUID(int=value)


def uuid7_time_ms(value: uuid.UUID) -> int:
    """Return the Unix milliseconds a UUIDv7 was made at."""
    return value.int >> 80
