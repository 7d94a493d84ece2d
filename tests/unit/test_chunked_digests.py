"""`WholeDigest` hashes the windows fed to it in a thread of its own, in offset order whatever order they come in,
and stops when closed."""

import hashlib
import os
import threading

from plugins.chunked.digests import WholeDigest


def test_the_digests_are_those_of_the_windows_in_order_and_the_thread_stops() -> None:
    windows = [os.urandom(size) for size in (1, 4096, 1 << 20, 7, 65536, 3)]
    offsets = [sum(len(window) for window in windows[:index]) for index in range(len(windows))]
    whole = WholeDigest({"sha256", "md5"})
    for index in (1, 0, 3, 2, 5, 4):  # two windows read at once: either may be fed first
        whole.update(offsets[index], windows[index])
    digests = whole.hexdigests()
    joined = b"".join(windows)
    assert digests == {"sha256": hashlib.sha256(joined).hexdigest(), "md5": hashlib.md5(joined).hexdigest()}
    assert not [thread for thread in threading.enumerate() if thread.name == "whole-digest"]
    whole.close()  # closing again is fine


def test_a_digest_of_nothing_starts_no_thread() -> None:
    assert WholeDigest({"sha256"}).hexdigests() == {"sha256": hashlib.sha256(b"").hexdigest()}
