"""Zeek conn_state and history from the TCP flags each side of a flow sent.

Flow exporters other than Zeek (Argus, Suricata) only tell which TCP flags
each direction carried, not in which order. This module rebuilds what Zeek
would most likely have logged, following the order of the tests in Zeek's own
``conn_state`` function, so that the detection modules see the same states
whatever the input. Used by the Argus and the Suricata readers.
"""

from __future__ import annotations

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

# Argus prints the flags of each direction as letters ("FSPA_FSRPA").
ARGUS_FLAG_BITS = {
    "F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK, "U": URG, "E": ECE, "C": CWR,
}


def argus_flags(text: str) -> int:
    """'FSPA' -> the flag bits; KeyError for a letter that is not a TCP flag."""
    bits = 0
    for letter in text:
        bits |= ARGUS_FLAG_BITS[letter]
    return bits


def argus_tcp_flags(
    state: str, direction: str, answered: bool, spkts: int, dpkts: int
) -> tuple[int, int]:
    """The TCP flags of each side, from a flag pair ("FSPA_FSA") or a named state ("CON")."""
    if "_" in state:
        orig_letters, _, resp_letters = state.partition("_")
        try:
            return argus_flags(orig_letters), argus_flags(resp_letters)
        except KeyError:
            raise ValueError(f"State {state!r}: not TCP flags") from None
    # Named states (ra without -Z): what each side must have sent to get there.
    # "?" in the direction means Argus did not see the connection start.
    opened = ACK | PSH if "?" in direction else SYN | ACK | PSH
    if not answered:
        if state == "RST":
            return SYN | RST, 0
        orig = opened if "?" in direction else SYN
        return orig | FIN if state in ("CLO", "FIN") else orig, 0
    if state == "RST":
        if spkts <= 1 and dpkts <= 1:
            return SYN, RST | ACK
        return opened, opened | RST
    if state == "ACC":
        return SYN | ACK, SYN | ACK
    if state in ("CLO", "FIN"):
        return opened | FIN, opened | FIN
    return opened, opened


def tcp_history(orig: int, resp: int) -> str:
    """Zeek history letters present in a flow, in Zeek's usual order (not the real one).

    PSH stands for data: the sender's TCP stack sets it on the last segment of
    every write, so a side that sent payload almost always shows it.
    """
    letters = []
    if orig & SYN:
        letters.append("S")
    if resp & SYN:
        letters.append("h" if resp & ACK else "s")
    if orig & ACK:
        letters.append("A")
    if orig & PSH:
        letters.append("D")
    # A responder's bare ACK only shows when it did more than answer the SYN or reset.
    if resp & ACK and resp & (PSH | FIN):
        letters.append("a")
    if resp & PSH:
        letters.append("d")
    if orig & FIN:
        letters.append("F")
    if resp & FIN:
        letters.append("f")
    if orig & RST:
        letters.append("R")
    if resp & RST:
        letters.append("r")
    return "".join(letters)


def tcp_state(orig: int, resp: int) -> str:
    """Zeek conn_state of a TCP flow from the flags of each side (resp 0: no reply seen).

    Follows the order of Zeek's tests: a responder reset decides first (REJ when
    the originator got no further than its SYN), then an originator reset, then
    FINs, then the handshake. Zeek calls a side "inactive" when it sent no SYN;
    here a side that sent data (PSH) is active too, so that a flow picked up
    mid-stream with data both ways is not taken for an unanswered attempt.
    """
    orig_syn = orig & SYN
    resp_syn = resp & SYN
    orig_active = orig & (SYN | PSH)
    resp_active = resp & (SYN | PSH)
    if resp & RST:
        if orig_syn and not resp_syn and not orig & (PSH | FIN):
            return "REJ"
        return "RSTR" if orig_active else "RSTRH"
    if orig & RST:
        if resp_active:
            return "RSTO"
        return "RSTOS0" if orig_syn else "OTH"
    if orig & FIN and resp & FIN:
        return "SF"
    if orig & FIN:
        return "S2" if resp_active else "SH"
    if resp & FIN:
        return "S3" if orig_active else "SHR"
    if orig_syn and not resp:
        return "S0"
    if orig_syn and resp_syn and orig & ACK:
        return "S1"
    return "OTH"


def tcp_payload(flags: int, wire_bytes: int) -> int:
    """Zeek counts payload bytes, flow exporters bytes on the wire.

    A side that set flags but never PSH sent no payload (only handshake, ACKs,
    FIN, RST), so its payload is 0. Otherwise the wire count stands in (headers
    included, an over-estimate); also when no flags were recorded at all.
    """
    return wire_bytes if flags & PSH or not flags else 0


def udp_state(answered: bool) -> tuple[str, str]:
    """Zeek's UDP states: packets both ways are SF ('Dd'), one way S0 ('D')."""
    return ("SF", "Dd") if answered else ("S0", "D")
