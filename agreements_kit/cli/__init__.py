"""The command line: parsing and printing over the library."""

from agreements_kit.cli.commands import main

__all__ = ["main"]
