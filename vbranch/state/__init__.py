"""vbranch's own state: the SQLite store, the locks, the configuration, the workspace that opens them."""
