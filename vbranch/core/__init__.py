"""The pure core: line ownership, merging versions, Claude Code's view of a file, the guard's decisions.

No I/O here (no files, processes, SQLite or git): everything takes values and returns values,
so it is tested without a repository. A test (tests/test_layers.py) keeps it that way.
"""
