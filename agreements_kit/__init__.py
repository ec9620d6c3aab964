"""agreements-kit: generate, sign and audit clinical treatment agreements.

The package is laid out as one module per step of the data's way:
clause library (``library``) -> agreement (``spec``, ``agreement``) -> HTML
(``html``) -> PDF (``pdf``) -> draft on disk (``render``, ``manifest``).
The command line (``cli``) only parses arguments and prints.
"""

__version__ = "0.1.0"
