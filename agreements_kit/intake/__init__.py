"""In-person signing at intake: the Flask app and its one-time links."""
