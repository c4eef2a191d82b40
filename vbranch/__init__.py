"""vbranch: several coding sessions in one git working directory, each on its own branch."""
