"""
Random tokens for SIP tags, branches, Call-IDs and nonces.

Every response we send carries a To tag, every challenge a nonce, every
request a branch and a Call-ID: with C{secrets.token_hex} each is one
C{getrandom} system call.  Here they are cut from a pool of
C{os.urandom} bytes read 4 KiB at a time (the same bytes C{secrets}
gives, one system call per few hundred tokens).  The pool is per process
(emptied in a forked child, so parent and child never hand out the same
bytes) and is meant for the reactor thread, where the SIP stack runs.
"""
from __future__ import annotations

import os

__all__ = ["token_bytes", "token_hex"]

#: Bytes read from the kernel at a time.
POOL_SIZE = 4096


class _Pool:
    """Random bytes read ahead, handed out once each."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def reset(self) -> None:
        """Forget what was read ahead (in a forked child)."""
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        """@return: C{n} bytes no other caller gets."""
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            self._buf = os.urandom(max(POOL_SIZE, n))
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]


_pool = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.reset)


def token_bytes(n: int) -> bytes:
    """
    @param n: how many bytes.
    @return: C{n} random bytes (as C{secrets.token_bytes}).
    """
    return _pool.take(n)


def token_hex(n: int) -> str:
    """
    @param n: how many random bytes.
    @return: them in lower-case hex, C{2 * n} characters (as
        C{secrets.token_hex}).
    """
    return _pool.take(n).hex()
