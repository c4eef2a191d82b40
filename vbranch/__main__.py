from vbranch.cli.commands import main

raise SystemExit(main())
