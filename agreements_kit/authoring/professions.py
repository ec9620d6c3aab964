"""The professions a therapist may practise under, as codes practice.yaml and variants share.

Some duties bind only some professions: New York's SAFE Act report (Mental Hygiene
Law 9.46) binds physicians, psychologists, registered nurses and licensed clinical
social workers, and no one else. So a jurisdiction variant may name the professions
it is written for, and each therapist in ``practice.yaml`` names theirs. The codes are
identifiers, not text shown to clients (a library's wording stays in its YAML), so a
new language never touches them. Several titles of one license share a code: an LPC
in one state is an LMHC in another.
"""

from __future__ import annotations

#: Each profession code, and the other spellings accepted for it in practice.yaml.
#: "psychiatrist" stands for every physician (MD, DO): the duties that bind psychiatrists here
#: (New York's SAFE Act report) bind physicians as such. A psychiatric nurse practitioner is a
#: registered nurse too; "rn" is a registered nurse without that certification. "lmsw" (a
#: licensed master social worker) is not a clinical social worker: MHL 9.46 does not bind it.
PROFESSIONS: dict[str, tuple[str, ...]] = {
    "psychologist": ("licensed-psychologist",),
    "psychiatrist": ("physician", "md", "do"),
    "psychiatric-nurse-practitioner": ("pmhnp", "pmhnp-bc", "psychiatric-np", "aprn"),
    "rn": ("registered-nurse",),
    "lcsw": ("licensed-clinical-social-worker", "licsw", "lcsw-r"),
    "lmsw": ("licensed-master-social-worker",),
    "lpc": ("lmhc", "lpcc", "lcpc", "lcmhc", "licensed-professional-counselor", "licensed-mental-health-counselor",
            "licensed-clinical-professional-counselor", "licensed-clinical-mental-health-counselor"),
    "lmft": ("licensed-marriage-and-family-therapist", "mft"),
}

_ALIASES = {alias: code for code, aliases in PROFESSIONS.items() for alias in (code, *aliases)}

#: The value name under which a rendered agreement records its therapist's profession (see
#: agreement.build): the manifest keeps every value used, so re-rendering picks the same variants.
PROFESSION_VALUE = "therapist_profession"


def profession_code(value: str) -> str | None:
    """The code for a profession as a person typed it ("LMHC", "lmhc"), or None if unknown."""
    return _ALIASES.get("-".join(value.strip().lower().replace("_", "-").split()))


def known() -> str:
    """The accepted codes, for messages."""
    return ", ".join(PROFESSIONS)
