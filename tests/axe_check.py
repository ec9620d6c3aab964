"""axe-core's accessibility check of a page open in Playwright, for any browser test to call.

axe-core comes from npm (package.json / package-lock.json at the repository's top,
installed into node_modules/ by ``scripts/bootstrap --test``). Its script is put into
the page with ``page.evaluate`` (DevTools evaluation, which the intake pages' strict
Content-Security-Policy does not block, so the page is checked as served) and run
with the WCAG 2.0 and 2.1 level A and AA rules. A missing axe-core fails the test
that needed it, with a line saying how to install it: it never skips.

    from axe_check import assert_accessible
    assert_accessible(page, "handoff-email")   # also keeps tests/output/screenshots/axe-handoff-email.png
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

AXE_JS = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
RUN = """async tags => {
    const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
    return {version: axe.version, violations: result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}))};
}"""


@functools.cache
def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.fail(f"axe-core is not installed ({AXE_JS} is missing): run scripts/bootstrap --test", pytrace=False)
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page, tags: tuple[str, ...] = WCAG_21_AA) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2.1 A and AA unless told)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return page.evaluate(RUN, list(tags))["violations"]


def describe(violations: list[dict[str, Any]]) -> str:
    """One block per violation: its id, impact and help, then every element it found (a CSS selector)."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            summary = "; ".join(line.strip() for line in (node["summary"] or "").splitlines() if line.strip())
            lines.append(f"    at {node['target']}: {summary}")
    return "\n".join(lines)


def assert_accessible(page, name: str) -> None:
    """Keep a screenshot of the page as ``axe-NAME``, then fail with axe-core's findings if it has any."""
    from test_intake_browser import shot

    shot(page, f"axe-{name}")
    check_page(page, name)


def check_page(page, name: str) -> None:
    """Fail with axe-core's findings on the page as it is now (a flow's own screenshots stay the caller's)."""
    violations = axe_violations(page)
    assert not violations, f"axe-core: {len(violations)} violation(s) on the {name} page ({page.url}):\n" \
                           + describe(violations)
