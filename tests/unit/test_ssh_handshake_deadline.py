"""The SSH handshake's timeout is a deadline the reader thread checks, not a timer thread."""

from __future__ import annotations

import socket
import threading

from engine.transport.ssh import _Packetizer


def _packetizer() -> _Packetizer:
    a, b = socket.socketpair()
    a.close()
    return _Packetizer(b)


def test_no_timeout_before_the_handshake_starts() -> None:
    assert not _packetizer().handshake_timed_out()


def test_a_handshake_past_its_deadline_has_timed_out() -> None:
    p = _packetizer()
    p.start_handshake(0)
    assert p.handshake_timed_out()


def test_a_completed_handshake_never_times_out() -> None:
    p = _packetizer()
    p.start_handshake(0)
    p.complete_handshake()
    assert not p.handshake_timed_out()


def test_a_rekey_keeps_the_first_deadline_and_starts_no_thread() -> None:
    p = _packetizer()
    before = threading.active_count()
    p.start_handshake(3600)
    p.start_handshake(0)  # paramiko calls it again on a rekey: the first deadline stays, as its timer did
    assert not p.handshake_timed_out()
    assert threading.active_count() == before
