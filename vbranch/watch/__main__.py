"""`python -m vbranch.watch`: the watcher process (what `control.start_background` runs)."""
from vbranch.watch.command import _main

raise SystemExit(_main())
