"""The store: atomic private files, the archive and its ledger."""
