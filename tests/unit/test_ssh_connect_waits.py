"""SSH connection set-up: the handshake's timeout is a deadline the reader thread checks (not
a timer thread), and the handshake and each authentication answer are waited for once."""

from __future__ import annotations

import socket
import threading

import paramiko
import pytest

from engine.transport.ssh import _auth, _negotiate, _Packetizer


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


# -- one wait for the handshake and for each authentication answer --------------------------
class _FakeTransport:
    """What _negotiate and _auth read of a paramiko transport: the reader thread's outcome."""

    auth_timeout = 0.01

    def __init__(self, *, answer: bool = True, active: bool = True, authenticated: bool = False,
                 exc: BaseException | None = None):
        self.answer, self.active, self.authenticated, self.exc = answer, active, authenticated, exc

    def start(self, done: threading.Event) -> None:
        if self.answer:
            done.set()

    def start_client(self, event: threading.Event) -> None:
        self.start(event)

    def is_active(self) -> bool:
        return self.active

    def is_authenticated(self) -> bool:
        return self.authenticated

    def get_exception(self) -> BaseException | None:
        exc, self.exc = self.exc, None
        return exc


def test_auth_accepted_returns() -> None:
    t = _FakeTransport(authenticated=True)
    _auth(t, t.start)  # type: ignore[arg-type]


def test_auth_refused_raises_what_the_reader_thread_saved() -> None:
    t = _FakeTransport(exc=paramiko.BadAuthenticationType("Bad authentication type", ["password"]))
    with pytest.raises(paramiko.BadAuthenticationType) as info:
        _auth(t, t.start)  # type: ignore[arg-type]
    assert info.value.allowed_types == ["password"]


def test_auth_refused_without_a_reason_is_an_authentication_failure() -> None:
    t = _FakeTransport()
    with pytest.raises(paramiko.AuthenticationException, match="Authentication failed"):
        _auth(t, t.start)  # type: ignore[arg-type]


def test_partial_auth_returns_not_authenticated() -> None:
    t = _FakeTransport(exc=paramiko.ssh_exception.PartialAuthentication(["password"]))
    _auth(t, t.start)  # type: ignore[arg-type]
    assert not t.is_authenticated()


def test_connection_lost_during_auth_is_an_authentication_failure() -> None:
    t = _FakeTransport(active=False, exc=EOFError())
    with pytest.raises(paramiko.AuthenticationException, match="transport shut down"):
        _auth(t, t.start)  # type: ignore[arg-type]


def test_no_answer_to_auth_is_a_timeout() -> None:
    t = _FakeTransport(answer=False)
    with pytest.raises(paramiko.AuthenticationException, match="timeout"):
        _auth(t, t.start)  # type: ignore[arg-type]


def test_failed_negotiation_raises_its_reason() -> None:
    t = _FakeTransport(active=False, exc=paramiko.SSHException("Incompatible ssh peer"))
    with pytest.raises(paramiko.SSHException, match="Incompatible"):
        _negotiate(t, 5)  # type: ignore[arg-type]
    with pytest.raises(paramiko.SSHException, match="Negotiation failed"):
        _negotiate(_FakeTransport(active=False), 5)  # type: ignore[arg-type]


def test_negotiation_done_returns() -> None:
    _negotiate(_FakeTransport(), 5)  # type: ignore[arg-type]
