"""Authoring: clause library -> agreement -> HTML -> PDF, and the practice's settings."""
