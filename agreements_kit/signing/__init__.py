"""Signing: the practice CA, CMS signatures, signing acts and their records."""
