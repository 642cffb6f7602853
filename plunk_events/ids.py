"""Time-ordered UUIDs (version 7, RFC 9562) for rows that are inserted at a high rate.

Random UUIDv4 keys scatter B-tree inserts across the whole index; v7 keys start with the
millisecond timestamp so new events land at the right edge of the primary key index. Within one
process the values are strictly increasing (RFC 9562 §6.2, method 3), so a system event created
just before the tracked event sorts before it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, version, 74 random bits, variant."""
    global _last
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    with _lock:
        if value <= _last:
            # Same millisecond (or a clock step back): count up from the last value in the
            # random bits, which keeps the version and variant bits intact.
            value = _last + 1
            if (value >> 62) & 0b11 != 0b10:  # rand_b overflowed into the variant
                value = ((value >> 64) + 1) << 64 | 0b10 << 62
        _last = value
    return uuid.UUID(int=value)
