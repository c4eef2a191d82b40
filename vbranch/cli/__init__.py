"""The command line: `commands` (argparse, one function per subcommand), `ui` (all printing, rich),
`demo`, `doctor`."""
