"""The hook handler (our hook events, Claude Code's contract), the per-file write leases, the hook
server the watcher hosts, and the guard of the harness files outside the repository."""
