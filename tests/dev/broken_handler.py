"""A handler module whose init fails."""

raise RuntimeError("init failed on purpose")
