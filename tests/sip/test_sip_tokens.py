"""
Tests for L{appliance.sip.tokens}: random tokens cut from a pool.
"""
from __future__ import annotations

import os

from appliance.sip import tokens


def test_tokens_have_the_asked_size_and_do_not_repeat() -> None:
    """
    token_hex(n) is 2n hex digits and token_bytes(n) n bytes; across
    several pool refills no token repeats (each byte is handed out once).
    """
    seen = set()
    for _ in range(3 * tokens.POOL_SIZE // 6):
        t = tokens.token_hex(6)
        assert len(t) == 12 and int(t, 16) >= 0
        seen.add(t)
    assert len(seen) == 3 * tokens.POOL_SIZE // 6
    assert len(tokens.token_bytes(8)) == 8
    assert len(tokens.token_bytes(tokens.POOL_SIZE + 10)) == tokens.POOL_SIZE + 10


def test_a_forked_child_does_not_reuse_the_parents_bytes() -> None:
    """After fork, the child's next token is not the parent's next token."""
    tokens.token_hex(1)              # the pool holds bytes read ahead
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                     # pragma: no cover - the child
        os.write(w, tokens.token_hex(16).encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != tokens.token_hex(16)
