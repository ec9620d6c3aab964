"""A small, real RFC 3161 time-stamp authority for the demo, the tests and the bench.

``openssl ts -reply`` does the RFC 3161 work; :mod:`.server` puts it behind HTTP as
its own process, with its own key, its own certificate (critical extendedKeyUsage
timeStamping) and its own root, so a test exercises exactly what a practice gets
from a public or commercial TSA: a separate party whose key the archive never holds.
It is not meant for production time: its clock is this machine's.
"""

from agreements_kit.localtsa.folder import POLICY_OID, TsaFolder, create, open_folder
from agreements_kit.localtsa.process import LocalTsa, start

__all__ = ["POLICY_OID", "LocalTsa", "TsaFolder", "create", "open_folder", "start"]
