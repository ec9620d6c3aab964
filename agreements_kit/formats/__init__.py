"""On-disk formats, parsed strictly in one place: the bottom layer."""
