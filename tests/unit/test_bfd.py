"""BFD's state machine and packets (RFC 5880), without sockets."""

from __future__ import annotations

import pytest

from bgplb.agent.bfd import SLOW_TX_US, Diag, Packet, Session, State, Timers


def handshake() -> tuple[Session, Session]:
    """Two sessions brought Up by exchanging packets (Down → Init → Up)."""
    a, b = Session(1), Session(2)
    for now in (0.0, 0.1, 0.2, 0.3):
        a, pa = a.packet()
        b, pb = b.packet()
        a, b = a.received(Packet.decode(pb.encode()) or pb, now), b.received(pa, now)
    return a, b


def test_three_way_handshake_brings_both_up_and_polls_for_the_fast_interval() -> None:
    a, b = handshake()
    assert (a.state, b.state) == (State.UP, State.UP)
    assert a.remote_discriminator == 2
    assert b.remote_discriminator == 1
    # Up lowers the interval from the slow one: a Poll until the peer answers Final.
    a = Session(1, state=State.INIT, remote_discriminator=2)
    a = a.received(Packet(State.UP, 2, 1, 3, 300_000, 300_000), 0.0)
    assert a.state == State.UP
    assert a.polling
    a, sent = a.packet()
    assert sent.poll
    assert not sent.final
    a = a.received(Packet(State.UP, 2, 1, 3, 300_000, 300_000, final=True), 0.1)
    assert not a.polling


def test_a_poll_is_answered_with_final_once() -> None:
    a, _ = handshake()
    a = a.received(Packet(State.UP, 2, 1, 3, 300_000, 300_000, poll=True), 1.0)
    a, first = a.packet()
    a, second = a.packet()
    assert first.final
    assert not second.final


def test_the_slow_interval_until_up_then_the_configured_one() -> None:
    s = Session(1, Timers(300_000, 300_000, 3))
    assert s.desired_min_tx_us == SLOW_TX_US
    a, _ = handshake()
    assert a.desired_min_tx_us == 300_000
    assert a.transmit_interval() == pytest.approx(0.3)
    # The peer asks for packets no faster than it can take.
    slow_peer = a.received(Packet(State.UP, 2, 1, 3, 300_000, 500_000), 1.0)
    assert slow_peer.transmit_interval() == pytest.approx(0.5)
    assert a.received(Packet(State.UP, 2, 1, 3, 300_000, 0), 1.0).transmit_interval() is None


def test_silence_past_the_detection_time_takes_it_down() -> None:
    a = Session(1, state=State.UP, remote_discriminator=2)
    slow = a.received(Packet(State.UP, 2, 1, 3, 1_000_000, 300_000), 9.0)
    assert slow.detection_time() == pytest.approx(3.0)  # the peer still sends slowly
    a = a.received(Packet(State.UP, 2, 1, 3, 300_000, 300_000), 10.0)
    assert a.detection_time() == pytest.approx(0.9)
    assert a.expired(10.85).state == State.UP
    down = a.expired(10.95)
    assert down.state == State.DOWN
    assert down.diag == Diag.DETECTION_EXPIRED
    assert down.remote_discriminator == 0


def test_the_peer_going_down_takes_it_down() -> None:
    a, _ = handshake()
    down = a.received(Packet(State.DOWN, 2, 1, 3, 1_000_000, 300_000, diag=1), 1.0)
    assert down.state == State.DOWN
    assert down.diag == Diag.NEIGHBOR_DOWN
    admin = a.received(Packet(State.ADMIN_DOWN, 2, 1, 3, 1_000_000, 300_000), 1.0)
    assert admin.state == State.DOWN


def test_packets_round_trip_and_bad_ones_are_discarded() -> None:
    p = Packet(State.UP, 7, 9, 3, 300_000, 250_000, diag=1, poll=True)
    assert Packet.decode(p.encode()) == p
    raw = bytearray(p.encode())
    assert Packet.decode(bytes(raw[:20])) is None  # short
    bad_version = bytearray(raw)
    bad_version[0] = (2 << 5) | 1
    assert Packet.decode(bytes(bad_version)) is None
    no_multiplier = bytearray(raw)
    no_multiplier[2] = 0
    assert Packet.decode(bytes(no_multiplier)) is None
    authenticated = bytearray(raw)
    authenticated[1] |= 0x04
    assert Packet.decode(bytes(authenticated)) is None
    # Up without naming our discriminator cannot be ours.
    assert Packet.decode(Packet(State.UP, 7, 0, 3, 1, 1).encode()) is None
