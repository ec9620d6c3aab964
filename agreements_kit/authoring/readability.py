"""How a clause reads: its plain text, its sentences, its reading grade, its modal verbs.

Consent forms should read at a 6th to 8th grade level, and a summary must promise
neither more nor less than the text it sums up. These are the measures ``agreements
lint`` applies, kept apart from the lint's report so that tests (and a language other
than English, later) can use them on any text.

A body is a Jinja2 template: its ``{{ ... }}`` are scored as short sample words (what a
value typically is: a name, a number), its ``{% ... %}`` tags are dropped, so every
branch of a condition is read. Each item of a "- " list counts as a sentence of its
own, and so does a lead-in ending with a colon: a reader takes them one at a time.
"""

from __future__ import annotations

import re

# What a placeholder is read as: short, ordinary words, as the values usually are.
SAMPLES = {
    "client.name": "Sam Rivera",
    "therapist.name": "Robin Lee",  # no period: a sample must not end a sentence
    "therapist.id": "lee",
    "therapist.credentials": "PhD",
    "practice.name": "Riverbend DBT",
    "practice.phone": "555-0142",
    "practice.address": "12 Main Street",
    "practice.email": "office@example.org",
    "agreement.id": "the agreement",
    "agreement.date": "today",
    "agreement.jurisdiction": "US",
    "agreement.jurisdiction_name": "your state",
}
_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_TAG = re.compile(r"\{%-?.*?-?%\}|\{#.*?#\}", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
# Abbreviations whose period ends no sentence ("Dr. Lee", "e.g. a phone call", "9 a.m. on Monday").
_ABBREVIATION_END = re.compile(r"(?:\b(?:Dr|Mr|Mrs|Ms|No|St)|(?<!\w)(?:e\.g|i\.e|U\.S|a\.m|p\.m))\.$")

#: Modal verbs and how strongly each binds: an obligation, a promise, a permission or ability.
#: A negated form is a kind of its own ("will not share" is not "will share"), as strong as its verb.
MODALS = {"must": 3, "will": 2, "may": 1, "can": 1, "must not": 3, "will not": 2, "may not": 1, "cannot": 1}
NEGATED = frozenset({"must not", "will not", "may not", "cannot"})
_MODAL_FORMS = {"must": "must", "shall": "must", "must not": "must not", "shall not": "must not",
                "will": "will", "will not": "will not", "won't": "will not", "may": "may", "may not": "may not",
                "can": "can", "cannot": "cannot", "can not": "cannot", "can't": "cannot"}
_MODAL_RE = re.compile(r"\b(must\s+not|shall\s+not|will\s+not|won['\u2019]t|may\s+not|can\s*not|can['\u2019]t|"
                       r"must|shall|will|may|can)\b", re.I)


def plain_text(body: str, samples: dict[str, str] | None = None) -> str:
    """The body as a reader meets it, one sentence-like unit per line."""
    values = dict(SAMPLES, **(samples or {}))
    text = _TAG.sub("", body)
    text = _EXPR.sub(lambda m: values.get(m.group(1).strip(), "it"), text)
    return "\n".join(units(text))


def units(text: str) -> list[str]:
    """Paragraphs and list items, each ending as a sentence does (a list item or lead-in gets a period)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln.strip() for ln in block.strip().split("\n") if ln.strip()]
        if not lines:
            continue
        is_list = all(ln.startswith("- ") for ln in lines)
        items = [ln[2:].strip() for ln in lines] if is_list else [" ".join(lines)]
        for item in items:
            item = re.sub(r"[:;]$", ".", item)
            out.append(item if item[-1:] in ".!?" else item + ".")
    return out


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (already split into units, one a line, by :func:`units`)."""
    found: list[str] = []
    for unit in text.split("\n"):
        parts = [s.strip() for s in _SENTENCE_END.split(unit) if s.strip()]
        for n, part in enumerate(parts):
            if n and _ABBREVIATION_END.search(found[-1]):
                found[-1] += " " + part  # "Dr. Lee" goes on: the period was an abbreviation's
            else:
                found.append(part)
    return found


def word_count(sentence: str) -> int:
    return len([w for w in sentence.split() if any(ch.isalnum() for ch in w)])


def long_sentences(text: str, limit: int) -> list[tuple[int, str]]:
    """Sentences of more than ``limit`` words, with their word counts."""
    return [(n, s) for s in sentences(text) if (n := word_count(s)) > limit]


def grade(text: str) -> float:
    """Flesch-Kincaid grade of ``text`` (textstat's, with each unit counted as a sentence)."""
    import textstat  # imported here: it loads a pronunciation dictionary

    parts = sentences(text)
    if not parts:
        return 0.0
    words = sum(word_count(s) for s in parts)
    if words == 0:
        return 0.0
    syllables = sum(textstat.syllable_count(s) for s in parts)
    # The Flesch-Kincaid formula, with our own sentence count: textstat's splitter would run a
    # list's items together into one long sentence.
    return round(0.39 * words / len(parts) + 11.8 * syllables / words - 15.59, 1)


#: How each language's reading score is named, and whether a higher score is harder (a grade) or easier.
SCORES = {"en": ("reading grade", "Flesch-Kincaid", True), "es": ("reading ease", "Fernandez Huerta", False)}


def ease_es(text: str) -> float:
    """Fernandez Huerta reading ease of Spanish ``text`` (textstat's formula and Spanish syllables,
    with each unit counted as a sentence, as :func:`grade` does): 206.84 - 60 x syllables per word
    - 1.02 x words per sentence. 70 to 80 reads "fairly easy", 80 to 90 "easy"."""
    from textstat.backend import counts  # imported here: it loads hyphenation dictionaries

    parts = sentences(text)
    words = sum(word_count(s) for s in parts)
    if not parts or words == 0:
        return 100.0
    syllables = sum(counts.count_syllables(s, "es") for s in parts)
    return round(206.84 - 60 * syllables / words - 1.02 * words / len(parts), 1)


def score(text: str, language: str) -> float:
    """The reading measure of ``language`` for ``text`` (English: a grade; Spanish: an ease score)."""
    return ease_es(text) if language == "es" else grade(text)


def modals(text: str) -> set[str]:
    """The modal verbs ``text`` uses (must, will, may, can), and their negated forms as kinds of their own
    (must not, will not, may not, cannot): "won't" is "will not", "can't" is "cannot", "shall" is "must"."""
    return {_MODAL_FORMS[" ".join(m.group(1).lower().replace("\u2019", "'").split())] for m in _MODAL_RE.finditer(text)}


def _kind(modal: str) -> tuple[int, bool]:
    """A modal's kind: its strength and whether it is negated (may and can are one kind, as are may not
    and cannot)."""
    return MODALS[modal], modal in NEGATED


def strength(found: set[str]) -> int:
    """How strongly a text binds: its strongest modal (0: it uses none)."""
    return max((MODALS[m] for m in found), default=0)


def modal_mismatch(summary: str, body: str) -> str | None:
    """Why a summary is stronger or weaker than its body, or None if it is neither.

    Strength is the kind of modal: an obligation (must), a promise (will), a permission
    or ability (may, can: one kind), each also negated (must not, will not, may not or
    cannot: kinds of their own, so "we will share" does not sum up "we will not share").
    A summary may use only kinds its body uses (saying "must" where the body says "may"
    promises more than the text does), and must reach its body's strongest one (a body
    that says "must" is not summed up by "may")."""
    said, meant = modals(summary), modals(body)
    levels = {_kind(m) for m in meant}
    extra = sorted((m for m in said if _kind(m) not in levels), key=lambda m: (-MODALS[m], m))
    if extra:
        return (f"the summary says '{extra[0]}' but its body never does "
                f"(the body says: {', '.join(sorted(meant, key=lambda m: -MODALS[m])) or 'no modal verb'})")
    if strength(said) < strength(meant):
        strongest = max(meant, key=lambda m: MODALS[m])
        return (f"the summary is weaker than its body: the body says '{strongest}', the summary "
                f"{'only ' + ', '.join(sorted(said)) if said else 'no modal verb'}")
    return None
