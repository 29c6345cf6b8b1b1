"""Who a verified TLS client certificate says the client is (issue 13: "a client certificate may
authenticate its user"), as ActiveMQ's certificate login module maps `user=DN`.

`[authentication] certificate_users = {"app1" = "CN=app1,O=Example"}` names, for a configured user,
the subject of the certificate that logs in as that user. A client that sends no login and no
passcode over a TLS connector whose certificate was verified against `tls.ca` is that user if its
subject is exactly the configured one: the same attributes with the same values, in any order
(RFC 4514 short names: CN, O, OU, L, ST, C, DC, UID, emailAddress). Escaped commas in a DN are
not supported and are refused in the configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Subject = frozenset[tuple[str, str]]

# ssl.getpeercert() long attribute names -> the short RFC 4514 names operators write.
_SHORT = {
    "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "localityName": "L",
    "stateOrProvinceName": "ST", "countryName": "C", "domainComponent": "DC", "userId": "UID",
    "emailAddress": "emailAddress",
}


def parse_dn(text: str) -> Subject:
    """`CN=app1, O=Example` -> {("CN", "app1"), ("O", "Example")}; ValueError says what is wrong."""
    if "\\" in text or '"' in text:
        raise ValueError(f"subject {text!r}: escaped or quoted values are not supported")
    pairs = []
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ValueError(f"subject {text!r}: expected NAME=VALUE pairs separated by commas")
        pairs.append((name.strip(), value.strip()))
    return frozenset(pairs)


def certificate_subject(certificate: Mapping[str, object]) -> Subject | None:
    """The subject of a certificate as ssl.SSLObject.getpeercert() returns it; None if it has none."""
    rdns = certificate.get("subject")
    if not isinstance(rdns, tuple) or not rdns:
        return None
    pairs = []
    for rdn in rdns:
        for name, value in rdn:
            pairs.append((_SHORT.get(name, name), str(value)))
    return frozenset(pairs)


class CertificateUsers:
    """Subject -> user name, for the users `certificate_users` names."""

    def __init__(self, mapping: Mapping[str, str], known_users: Iterable[str]) -> None:
        known = set(known_users)
        self._by_subject: dict[Subject, str] = {}
        for user, dn in mapping.items():
            if user not in known:
                raise ValueError(f"certificate_users names {user!r}, which is not a configured user")
            subject = parse_dn(dn)
            if subject in self._by_subject:
                raise ValueError(f"certificate_users: {user!r} and {self._by_subject[subject]!r} "
                                 "have the same subject")
            self._by_subject[subject] = user

    def __bool__(self) -> bool:
        return bool(self._by_subject)

    def user_for(self, certificate: Mapping[str, object] | None) -> str | None:
        if certificate is None or not self._by_subject:
            return None
        subject = certificate_subject(certificate)
        return self._by_subject.get(subject) if subject is not None else None
