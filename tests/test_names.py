"""Names that identify a person: Unicode NFC, and no mixed-script look-alikes, at render and at signing."""

from __future__ import annotations

import unicodedata

import pytest

from agreements_kit.authoring.spec import make_spec
from agreements_kit.errors import SigningError, SpecError
from agreements_kit.formats.text import check_name, nfc

CYRILLIC_A = "\u0430"  # looks like Latin "a"
LOOKALIKES = [f"J{CYRILLIC_A}ne Doe", "Jane D\u043ee", "\u0391lex Young"]  # Cyrillic a, Cyrillic o, Greek Alpha
HONEST = ["Jane Q. Doe", "Ana María Núñez", "Иван Петров", "Μαρία Παπαδοπούλου", "王小明", "Zoë O'Neill-Łukasz"]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_mixed_script_name_is_refused_at_render(name: str):
    with pytest.raises(SpecError) as info:
        make_spec(client=name, therapist="lee")
    assert "mixes" in info.value.message and "look-alike" in info.value.message


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_mixed_script_guardian_is_refused_at_render(name: str):
    with pytest.raises(SpecError):
        make_spec(client="Sam Young", therapist="lee", guardian=name, relation="parent")


@pytest.mark.parametrize("name", HONEST)
def test_names_in_one_script_each_are_accepted(name: str):
    assert check_name(name) is None
    assert make_spec(client=name, therapist="lee").client == nfc(name)


def test_names_are_stored_in_nfc():
    decomposed = unicodedata.normalize("NFD", "Zoë Núñez")
    assert decomposed != "Zoë Núñez"
    assert make_spec(client=decomposed, therapist="lee").client == "Zoë Núñez"


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_mixed_script_name_is_refused_at_signing(name: str, tmp_path):
    """The typed name is checked before anything is signed (sign.check_client_request)."""
    from agreements_kit.signing.sign import ClientSigning, check_client_request

    class Folder:  # only what check_client_request reads before the name check
        client_name = "Jane Doe"
        manifest = {"agreement": {}, "clauses": []}

    s = ClientSigning(name=name, consent=True, initials={}, intent=True, identity_method="photo ID",
                      identity_checked_by="desk")
    with pytest.raises(SigningError) as info:
        check_client_request(Folder(), s)  # type: ignore[arg-type]
    assert "mixes" in info.value.message
