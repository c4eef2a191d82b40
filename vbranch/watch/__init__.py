"""The watcher, by job, lowest first: treewalk, treesnap, ignores, inotify, monitor, dirtyset, process,
control (start and stop it from outside), command (`vbranch watch`, and the wiring to the hook handler).

Kept empty: readers import `vbranch.watch.dirtyset` or `.control` without loading watchdog.
"""
