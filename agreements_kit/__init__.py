"""agreements-kit: generate, sign and audit clinical treatment agreements.

The package is laid out in layers; a layer imports only the layers below it
(pyproject.toml's import-linter contract checks this):

    cli           the command line: parses arguments and prints
    intake        the in-person signing web app
    verification  one verifier, used by verify and audit alike
    signing       the practice CA, CMS signatures, signing acts
    authoring     clause library -> agreement -> HTML -> PDF -> draft on disk
    store         atomic private files, the archive and its ledger
    formats       on-disk formats, parsed strictly in one place

``errors`` and ``resources`` are shared by every layer.
"""

__version__ = "0.1.0"
