"""`WholeDigest` hashes the windows fed to it in a thread of its own, in offset order whatever order they come in,
and stops when closed."""

import hashlib
import os
import threading

import pytest

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


def test_a_pass_cut_short_closes_quietly_and_a_digest_asked_of_it_is_refused() -> None:
    """A copy cancelled past its deadline feeds a later window and never an earlier one: closing it stops the thread
    without an exception in it (nobody would hear one there); asking for its digests says which window is missing."""
    heard: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: heard.append(args.exc_value) if args.exc_value else None
    try:
        whole = WholeDigest({"sha256"})
        whole.update(4096, os.urandom(4096))  # the window at 0 never comes
        whole.close()
    finally:
        threading.excepthook = previous
    assert heard == []
    with pytest.raises(RuntimeError, match="never the one at 0"):
        whole.hexdigests()
