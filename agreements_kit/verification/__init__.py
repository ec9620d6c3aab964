"""Verification: one verifier in numbered steps, used by verify and audit alike."""
