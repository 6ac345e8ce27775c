"""What the tls module knows about one ssl record and its certificate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .certs import Cert


@dataclass(frozen=True, slots=True)
class Facts:
    """What a certificate, the SNI and the server's address say, whoever the client:
    the same few servers answer most connections, so these are computed once each."""

    subjects: tuple[str, ...]
    issuers: tuple[str, ...]
    cns: tuple[str, ...]
    names: tuple[str, ...]
    sni: str
    covered: bool
    likely_covered: bool
    sni_owner: str | None
    server_owners: frozenset[str]


@dataclass(slots=True)  # not frozen: a frozen dataclass is slower to build, per record
class TlsRecord:
    """One ssl record with everything known about its certificate."""

    event: Mapping[str, Any]
    cert: Cert | None
    subjects: tuple[str, ...]
    issuers: tuple[str, ...]
    cns: tuple[str, ...]  # the subjects' common names
    names: tuple[str, ...]  # certificate names: CNs, then SANs
    sni: str
    status: str
    covered: bool  # the certificate's names cover the SNI
    # Covered, or only the CN is known (no x509 record) and it is in the SNI's domain:
    # certificates nearly always list their CN's siblings as alternative names.
    likely_covered: bool
    sni_owner: str | None  # well-known organisation owning the SNI's domain
    server_owners: frozenset[str]  # ... owning the server's address or its AS

    @property
    def sans_known(self) -> bool:
        return self.cert is not None

    @property
    def self_issued(self) -> bool:
        """A leaf (not a CA) whose issuer is its own subject."""
        if not (self.subjects and self.issuers) or (self.cert and self.cert.is_ca):
            return False
        return self.subjects[0] == self.issuers[0]
