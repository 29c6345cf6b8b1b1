from __future__ import annotations

import pytest

from broker.engine.certlogin import CertificateUsers, certificate_subject, parse_dn

ALICE = {"subject": ((("organizationName", "Example"),), (("commonName", "alice"),))}


def test_a_subject_matches_whatever_the_order_and_spacing() -> None:
    users = CertificateUsers({"alice": "CN=alice, O=Example"}, ["alice", "bob"])
    assert users.user_for(ALICE) == "alice"
    assert certificate_subject(ALICE) == parse_dn("O=Example,CN=alice")


def test_a_subset_or_superset_of_the_subject_is_nobody() -> None:
    users = CertificateUsers({"alice": "CN=alice"}, ["alice"])
    assert users.user_for(ALICE) is None  # the certificate also says O=Example
    longer = CertificateUsers({"alice": "CN=alice,O=Example,OU=ops"}, ["alice"])
    assert longer.user_for(ALICE) is None
    assert users.user_for(None) is None and users.user_for({}) is None


@pytest.mark.parametrize("mapping, known, problem", [
    ({"carol": "CN=carol"}, ["alice"], "not a configured user"),
    ({"alice": "CN=x", "bob": "CN = x"}, ["alice", "bob"], "same subject"),
    ({"alice": "CN=a\\,b"}, ["alice"], "escaped"),
    ({"alice": "alice"}, ["alice"], "NAME=VALUE"),
])
def test_bad_mappings_are_refused(mapping: dict[str, str], known: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CertificateUsers(mapping, known)
