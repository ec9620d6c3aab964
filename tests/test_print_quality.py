"""Print quality, read back from the PDF as poppler sees it: page breaks, margins, fonts, footers.

Positions come from ``pdftotext -bbox-layout`` (every line and word with its box, in
points from the page's top left), fonts from ``pdffonts``, pictures from ``pdftoppm``.
Every page of the demo agreement lands in ``tests/output/pages/<language>/`` as PNG, for a
person to look at.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from agreements_kit.authoring.library import load_library
from agreements_kit.resources import clauses_dir, templates_dir

pytestmark = pytest.mark.requires_tool("pdftotext", "pdffonts", "pdftoppm", "pdfinfo")

REPO = Path(__file__).resolve().parent.parent
PAGES_OUT = REPO / "tests" / "output" / "pages"
DATE = "2026-03-04"
MM = 72 / 25.4
# agreement.css: @page margins (top, right, bottom, left) and Letter size, in points.
MARGIN_RIGHT = MARGIN_LEFT = 20 * MM
MARGIN_BOTTOM = 26 * MM
SLACK = 1.0  # pdftotext rounds boxes; a glyph's box may overhang its advance slightly

# Options that render the demo agreement in each language. A language is added here (and in
# the library and templates) and every page of its demo agreement is pictured too.
LANGUAGE_OPTIONS: dict[str, list[str]] = {"en": [], "es": ["--language", "es"]}


@dataclass(frozen=True)
class Line:
    page: int
    y_min: float
    y_max: float
    x_min: float
    x_max: float
    text: str


@dataclass(frozen=True)
class Page:
    number: int
    width: float
    height: float
    lines: list[Line]  # top to bottom

    @property
    def body(self) -> list[Line]:
        """Lines of the page area (above the bottom margin, where the footer is)."""
        return [ln for ln in self.lines if ln.y_max <= self.height - MARGIN_BOTTOM + SLACK]

    @property
    def footer(self) -> list[Line]:
        return [ln for ln in self.lines if ln.y_min > self.height - MARGIN_BOTTOM]


def layout(pdf: Path) -> list[Page]:
    """Pages with their text lines and positions, from ``pdftotext -bbox-layout``."""
    out = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    # The XHTML has a DOCTYPE and named entities no XML parser knows: keep the <body>.
    body = out[out.index("<body>"):out.index("</body>") + len("</body>")]
    root = ET.fromstring(re.sub(r"&(?!(amp|lt|gt|quot|apos);)", "&amp;", body))
    pages = []
    for number, page in enumerate(root.iter("page"), start=1):
        lines = []
        for line in page.iter("line"):
            words = [html.unescape(w.text or "") for w in line.iter("word")]
            lines.append(Line(number, float(line.get("yMin")), float(line.get("yMax")), float(line.get("xMin")),
                              float(line.get("xMax")), " ".join(words)))
        lines.sort(key=lambda ln: (round(ln.y_min), ln.x_min))
        pages.append(Page(number, float(page.get("width")), float(page.get("height")), lines))
    return pages


def page_count(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


def fonts(pdf: Path) -> list[tuple[str, bool]]:
    """(font name, embedded?) of every font of the PDF, from ``pdffonts``."""
    out = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = []
    for row in out.splitlines()[2:]:
        fields = row.split()
        # name type... encoding emb sub uni object ID: 'emb' is the fifth field from the end.
        rows.append((fields[0], fields[-5] == "yes"))
    return rows


def headings() -> tuple[set[str], list[str]]:
    """The area titles, and the clause titles (printed as 'N. Title'), of the default library."""
    lib = load_library(clauses_dir())
    titles = {c.title for cid in lib.clauses for c in [lib.clause(cid, j) for j in lib.jurisdictions]}
    return {a.title for a in lib.areas} | {"Signatures"}, sorted(titles)


def is_heading(text: str, areas: set[str], titles: list[str]) -> bool:
    flat = " ".join(text.split())
    if flat in areas:
        return True
    match = re.match(r"^\d+\. (.+)$", flat)
    return bool(match) and any(t.startswith(match.group(1)) or match.group(1).startswith(t) for t in titles)


def render(run_bin, practice: Path, out: Path, agreement_id: str, *args: str) -> Path:
    res = run_bin("render", "--practice", practice, "--therapist", "lee", "--id", agreement_id, "--date", DATE,
                  "--out", out, *args)
    assert res.exit_code == 0, res.stderr
    return out / agreement_id / "agreement.pdf"


def set_practice(practice: Path, key: str, value: str) -> None:
    """Set the practice's address or email in practice.yaml (printed under its name on page 1)."""
    settings = practice / "practice.yaml"
    text = settings.read_text()
    assert text.count(f'  {key}: ""\n') == 1
    settings.write_text(text.replace(f'  {key}: ""\n', f'  {key}: "{value}"\n'))


# Long values for every text variable (each at most 200 characters): a long agreement.
LONG_VALUES = {
    "backup_coverage": "Sam Ortiz, LCSW, or Dr. Alex Example, PsyD, of the Example Counseling Group, or the "
                       "on-call clinician of the Riverbend DBT Collaborative consultation team",
    "consultation_team": "the Riverbend DBT Collaborative consultation team of therapists, psychiatrists, nurse "
                         "practitioners and skills trainers who meet every Tuesday and Thursday",
    "crisis_line": "988, the Suicide and Crisis Lifeline, or the Western Montana Mobile Crisis Team of the "
                   "county, or the emergency department of Saint Patrick Hospital",
    "phone_support_hours": "on weekdays from 9 am to 5 pm and on Saturday mornings from 9 am to noon, except on "
                           "public holidays and during the winter closing week of the practice",
}
ADDRESS_PART = "Suite 100, Building A, 12 Example Street, Missoula, MT 59801; "


# --------------------------------------------------------------------------- page breaks


def test_no_initials_box_or_heading_is_left_alone_at_a_page_break(tmp_path: Path, run_bin):
    """A long agreement rendered again and again with its clauses at every height of a page
    (a longer practice address each time pushes everything down): no initials box opens a page
    apart from its clause, and no heading or clause summary closes one."""
    from agreements_kit.signing.setup import init_practice

    areas, titles = headings()
    lib = load_library(clauses_dir())
    initials_per_render = sum(c.initials for c in lib.clauses.values())
    client = "Ana María de la Fuente y Castellanos-Whitfield"
    settings = [f"--set={name}={value}" for name, value in LONG_VALUES.items()]
    at_page_end = set()
    shifts = range(0, 32, 3)  # copies of ADDRESS_PART: about 2/3 of a line each, so 0 to 20 lines
    for k in shifts:
        practice = tmp_path / f"practice-{k}"
        init_practice(practice, name="Riverbend DBT Collaborative", jurisdiction="US-NY", phone="(212) 555-0100",
                      therapists={"lee": ("Dr. Robin Lee", "PhD, Licensed Clinical Psychologist", "psychologist")})
        set_practice(practice, "address", (ADDRESS_PART * k).strip("; "))  # pushes everything down
        pdf = render(run_bin, practice, tmp_path / "out", f"agr-long-{k}", "--client", client, *settings)
        pages = layout(pdf)
        assert len(pages) == page_count(pdf) >= 6
        seen_initials = 0
        for page in pages:
            body = page.body
            assert body, f"k={k}: page {page.number} is empty"
            assert body[0].text != "Initials required", \
                f"k={k}: the initials box opens page {page.number}, apart from its clause"
            last = body[-1].text
            assert not is_heading(last, areas, titles), f"k={k}: heading {last!r} ends page {page.number}"
            assert not last.startswith("In plain words:"), f"k={k}: a summary closes page {page.number}"
            at_page_end.add(last)
            for i, line in enumerate(body):
                if line.text == "Initials required":  # the label beside the box (the intro names it too)
                    seen_initials += 1
                    before = body[i - 1].text if i else ""
                    assert i >= 2 and not is_heading(before, areas, titles), \
                        f"k={k}: the initials box on page {page.number} has too little of its clause above it"
        assert seen_initials == initials_per_render, k
    assert len(at_page_end) >= 2 * len(shifts), "the renders did not move the page breaks around"


# --------------------------------------------------------------------------- what a client sees


def test_no_internal_clause_codes_are_printed_but_the_manifest_keeps_them(practice: Path, tmp_path: Path,
                                                                          run_bin):
    pdf = render(run_bin, practice, tmp_path / "out", "agr-codes", "--client", "Jane Q. Doe")
    text = " ".join(ln.text for page in layout(pdf) for ln in page.lines)
    lib = load_library(clauses_dir())
    for cid in lib.clauses:
        assert cid not in text, cid
    assert not re.search(r"\b(Clause|Part) [a-z-]+\.[a-z.-]+ v\d+", text)
    assert "US-NY text" not in text
    manifest = (pdf.parent / "manifest.json").read_text()
    for cid in lib.clauses:
        assert f'"id":"{cid}"' in manifest.replace(" ", "")


def test_every_page_footer_names_the_client_the_agreement_and_page_x_of_y(practice: Path, tmp_path: Path,
                                                                         run_bin):
    pdf = render(run_bin, practice, tmp_path / "out", "agr-footer-7", "--client", "Jane Q. Doe")
    pages = layout(pdf)
    assert len(pages) >= 2
    for page in pages:
        footer = " ".join(ln.text for ln in page.footer)
        assert "Jane Q. Doe" in footer, (page.number, footer)
        assert "Agreement agr-footer-7" in footer, (page.number, footer)
        assert f"Page {page.number} of {len(pages)}" in footer, (page.number, footer)


def test_long_unbroken_strings_wrap_inside_the_margins(practice: Path, tmp_path: Path, run_bin):
    name = "Maximilianaalexandrinaconstantinopolitanamarialuisafernandaisabel" * 4
    name = name[:200]
    assert len(name) == 200 and " " not in name
    url = "https://example.org/" + "phone-hours-and-holidays-" * 6 + "index.html"
    email = f"intake.{'x' * 150}@riverbend.example"
    set_practice(practice, "email", email)
    pdf = render(run_bin, practice, tmp_path / "out", "agr-wide", "--client", name,
                 "--set", f"phone_support_hours={url}")
    pages = layout(pdf)
    assert len(pages) >= 2
    for page in pages:
        for line in page.lines:
            assert line.x_min >= MARGIN_LEFT - SLACK, (page.number, line.x_min, line.text[:40])
            assert line.x_max <= page.width - MARGIN_RIGHT + SLACK, (page.number, line.x_max, line.text[:40])
    # All of the name is there, broken over lines rather than cut.
    joined = "".join(ln.text.replace(" ", "") for page in pages for ln in page.lines)
    assert name in joined and url in joined and email in joined


# --------------------------------------------------------------------------- fonts


@pytest.mark.parametrize(("name", "font"), [
    ("王小明", "CJK"),
    ("김민준", "CJK"),
    ("Дмитрий Соколов", "DejaVu"),
    ("Νίκος Παπαδόπουλος", "DejaVu"),
    ("דוד כהן", "DejaVu"),
    ("محمد العلي", "DejaVu"),
    ("अर्जुन शर्मा", "Devanagari"),
], ids=["chinese", "korean", "cyrillic", "greek", "hebrew", "arabic", "devanagari"])
def test_names_in_any_script_are_drawn_with_an_embedded_font(practice: Path, tmp_path: Path, run_bin, name, font):
    pdf = render(run_bin, practice, tmp_path / "out", "agr-script", "--client", name)
    embedded = fonts(pdf)
    assert all(emb for _, emb in embedded), embedded  # PDF/A: every font embedded
    assert any(font in fname for fname, _ in embedded), embedded
    if font != "Devanagari" and name[0] not in "דמ":
        # Right-to-left text comes back from pdftotext in visual order; Devanagari conjuncts map back
        # to Unicode imperfectly (WeasyPrint maps a glyph to the first text it drew it for).
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert name.split()[0] in text


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize(("name", "words"), [
    ("Chen \U00020000", ["client name contains U+20000 (CJK UNIFIED IDEOGRAPH-20000)",
                         "no installed font can draw"]),
    ("Jane \ue000 Doe", ["client name", "U+E000"]),  # private use: refused before fonts are asked
    ("Jane \u0378 Doe", ["client name", "U+0378"]),  # unassigned
], ids=["uncovered-ideograph", "private-use", "unassigned"])
def test_a_name_no_installed_font_can_draw_is_refused(practice: Path, tmp_path: Path, run_bin, name, words):
    before = _tree(practice)
    res = run_bin("render", "--practice", practice, "--therapist", "lee", "--client", name, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Chen" not in lines[0] and "Jane" not in lines[0]  # the name itself is not echoed
    assert not (tmp_path / "out").exists() and _tree(practice) == before


def test_a_variable_no_installed_font_can_draw_is_refused(practice: Path, tmp_path: Path, run_bin):
    res = run_bin("render", "--practice", practice, "--therapist", "lee", "--client", "Jane Q. Doe",
                  "--set", "backup_coverage=Dr. \U00020001", "--out", tmp_path / "out")
    assert res.exit_code == 2, res.stderr
    assert "variable 'backup_coverage' contains U+20001" in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()


def test_library_text_no_installed_font_can_draw_is_refused_from_the_laid_out_pages():
    """The second check, on what WeasyPrint laid out: text that did not come from a person's input
    (a clause library, a template) is caught too, before any PDF byte exists."""
    from agreements_kit.authoring import pdf
    from agreements_kit.errors import MissingGlyphError

    page = ('<html lang="en"><head><title>t</title><link rel="stylesheet" href="agreement.css"></head>'
            '<body><p>A clause about \U00020000.</p></body></html>')
    with pytest.raises(MissingGlyphError) as info:
        pdf.write_pdf(page, templates_dir(), b"{}", dt.date(2026, 3, 4))
    assert info.value.chars == ["\U00020000"] and info.value.exit_code == 2
    assert "U+20000" in str(info.value)
    fine = page.replace("\U00020000", "王")
    assert pdf.write_pdf(fine, templates_dir(), b"{}", dt.date(2026, 3, 4)).startswith(b"%PDF-")


# --------------------------------------------------------------------------- pictures of every page


@pytest.fixture(scope="module")
def demo_practice(tmp_path_factory, agreements_bin) -> Path:
    base = tmp_path_factory.mktemp("demo-pages")
    proc = subprocess.run([agreements_bin, "demo", str(base / "practice")], capture_output=True, text=True,
                          cwd=base, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return base / "practice"


@pytest.mark.parametrize("language", sorted(LANGUAGE_OPTIONS))
def test_every_page_of_the_demo_agreement_is_pictured(demo_practice: Path, tmp_path: Path, run_bin, language):
    pdf = render(run_bin, demo_practice, tmp_path / "out", f"agr-demo-{language}", "--client", "Jane Q. Doe",
                 *LANGUAGE_OPTIONS[language])
    folder = PAGES_OUT / language
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("page-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "110", "-png", str(pdf), str(folder / "page")], check=True)
    pictures = sorted(folder.glob("page-*.png"))
    assert len(pictures) == page_count(pdf) >= 2
    for picture in pictures:
        with Image.open(picture) as image:
            assert image.size == (round(8.5 * 110), round(11 * 110))
            gray = image.convert("L")
            # Ink on the page: some pixels dark (text), most light (paper).
            histogram = gray.histogram()
            dark = sum(histogram[:100])
            assert dark > 500, f"{picture.name} looks blank"
            assert dark < 0.2 * sum(histogram), f"{picture.name} is mostly ink"
