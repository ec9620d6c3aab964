"""``agreements demo DIR``: the whole job on fictional people, in one command.

It creates a fictional practice, renders an agreement for a fictional client and
says where everything is. Later steps (signing, verifying) extend it so that it
stays the one command that shows what the tool does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from .practice import init_practice
from .render import Renderer, Job
from .spec import make_spec

DEMO_PRACTICE = {
    "name": "Riverbend DBT Collaborative (fictional)",
    "jurisdiction": "US-MT",
    "phone": "(406) 555-0142",
    "address": "12 Example Street, Missoula, MT",
    "email": "intake@riverbend.example",
    "therapists": {"lee": ("Dr. Robin Lee", "PhD, Licensed Clinical Psychologist"),
                   "ortiz": ("Sam Ortiz", "LCSW")},
    "variables": {"phone_support_hours": "on weekdays from 9 am to 5 pm",
                  "backup_coverage": "Sam Ortiz, LCSW, or another clinician on our DBT team"},
}
DEMO_CLIENT = "Jane Q. Doe"


@dataclass
class DemoResult:
    practice: Path
    draft: Path
    lines: list[str] = field(default_factory=list)


def run_demo(directory: str | Path) -> DemoResult:
    directory = Path(directory)
    init_practice(directory, **DEMO_PRACTICE)
    renderer = Renderer.load(directory)
    spec = make_spec(client=DEMO_CLIENT, therapist="lee", date=dt.date.today())
    renderer.prepare(spec)
    draft = renderer.render_to(Job(spec, renderer.practice.drafts))
    result = DemoResult(directory, draft)
    result.lines += [
        f"practice:  {directory} ({DEMO_PRACTICE['name']}, {DEMO_PRACTICE['jurisdiction']})",
        f"client:    {DEMO_CLIENT} (fictional), therapist: Dr. Robin Lee (fictional)",
        f"agreement: {spec.id}",
        f"draft:     {draft / 'agreement.pdf'}",
        f"manifest:  {draft / 'manifest.json'} (also embedded in the PDF: pdfdetach -list)",
    ]
    return result
