"""The Spanish intake pages in a real browser (Debian's Chromium via Playwright), checked by axe-core.

A Spanish draft's link, served by the real app on 127.0.0.1, walked through Start,
consent, initials, signature and done; every page must say ``lang="es"`` and pass
axe-core's WCAG 2.1 A and AA rules (screenshots as tests/output/screenshots/axe-es-*.png).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from axe_check import assert_accessible
from helpers import FakeClock, cheap_hasher
from playwright import sync_api
from test_intake import PASS
from test_intake_browser import CHROMIUM, CHROMIUM_ARGS
from test_intake_spanish import ES_ID, ES_NAME, base, pr  # noqa: F401  (fixtures)

from agreements_kit.intake.app import create_app, intake_link
from agreements_kit.intake.tickets import TicketStore


@pytest.fixture
def server(pr: Path):  # noqa: F811
    from werkzeug.serving import make_server

    app = create_app(pr, PASS.encode(), clock=FakeClock(), staff_hasher=cheap_hasher())
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join()


def test_the_spanish_pages_are_accessible_in_a_browser(pr: Path, server: str):  # noqa: F811
    assert Path(CHROMIUM).exists()
    token, _ = TicketStore(pr / "intake").open(ES_ID, "client", "photo ID", "Front desk")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(intake_link(server, token))

        def checked(name: str, heading: str) -> None:
            assert page.get_attribute("html", "lang") == "es"
            assert page.inner_text("h1") == heading
            assert_accessible(page, f"es-{name}")

        checked("start", "Listo para firmar")
        page.click("#start")
        checked("consent", "Antes de firmar")
        page.click("button.primary")  # without the tick: the Spanish error
        assert page.inner_text("#error").startswith("Revise esto:")
        checked("consent-error", "Antes de firmar")
        page.check("#consent")
        page.click("button.primary")
        checked("review", "Leer y poner iniciales")
        for box in page.query_selector_all(".initials input"):
            box.fill("AMN")
        page.click("button.primary")
        checked("signature", "Firmar")
        page.fill("#name", ES_NAME)
        page.check("#intent")
        page.click("#sign-button")
        checked("done", "Firmado")
        assert "Gracias. Usted firmó el acuerdo" in page.inner_text("main")
        browser.close()
