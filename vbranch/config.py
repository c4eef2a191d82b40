"""Reading the configuration on the hot path without importing pydantic.

`vbranch init` writes the whole validated `Config` (models.py) to
`.git/vbranch/config.json`; hooks read that JSON as it is. Only when the file
is missing do we pay for pydantic to get the defaults.
"""
from __future__ import annotations

import json
from pathlib import Path

FILENAME = "config.json"


def load(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / FILENAME).read_text())
    except (FileNotFoundError, ValueError):
        return defaults()


def defaults() -> dict:
    from .models import Config

    return Config().model_dump()


def write(state_dir: Path, values: dict) -> dict:
    """Validate and write the configuration; returns what was written."""
    from .models import Config

    config = Config(**values).model_dump()
    tmp = state_dir / (FILENAME + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(state_dir / FILENAME)
    return config
