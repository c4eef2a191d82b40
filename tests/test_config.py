"""config.json: merged with the defaults and validated in plain Python, so no file switches a guard off."""
from __future__ import annotations

import json
import subprocess
import sys
import typing

import pytest

from tests.conftest import VB
from tests.hookdriver import Session, denied_reason
from vbranch.state import config
from vbranch.state.models import Config, write_config


def put(state, text: str | bytes) -> None:
    path = state / config.FILENAME
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_a_partial_file_keeps_every_other_default(tmp_path):
    put(tmp_path, '{"guard_git": "warn"}')
    cfg, problems = config.load_checked(tmp_path)
    assert cfg == {**config.DEFAULTS, "guard_git": "warn"} and problems == []
    assert config.load(tmp_path)["guard_outside"] == "off"


def test_an_invalid_value_falls_back_to_its_default_and_is_reported(tmp_path):
    put(tmp_path, json.dumps({"guard_git": "Deny", "guard_lines": "warn", "lease_wait": -1, "lease_ttl": "60",
                              "lane": "", "watcher": None, "gaurd_outside": "off"}))
    cfg, problems = config.load_checked(tmp_path)
    assert cfg == {**config.DEFAULTS, "guard_lines": "warn"}
    text = "\n".join(problems)
    assert len(problems) == 6
    assert 'guard_git is "Deny", not one of "deny", "warn", "off"; using the default "deny"' in text
    assert "lease_wait is -1" in text and "lease_ttl is \"60\"" in text and "watcher is null" in text
    assert "unknown setting 'gaurd_outside'" in text
    assert config.problems(tmp_path) == problems and config.load(tmp_path) == cfg


@pytest.mark.parametrize("text", ["{not json", "[]", '"deny"', b"\xff\xfe\x00", ""])
def test_an_unreadable_file_means_every_default_and_a_problem(tmp_path, text):
    put(tmp_path, text)
    cfg, problems = config.load_checked(tmp_path)
    assert cfg == config.DEFAULTS and len(problems) == 1 and str(tmp_path / config.FILENAME) in problems[0]


def test_a_directory_in_place_of_the_file_is_reported(tmp_path):
    (tmp_path / config.FILENAME).mkdir()
    assert config.load_checked(tmp_path) == (config.DEFAULTS, [f"{tmp_path / config.FILENAME} cannot be read (Is a directory); every setting is at its default"])


def test_a_missing_file_is_the_defaults_without_a_problem(tmp_path):
    assert config.load_checked(tmp_path) == (config.DEFAULTS, [])
    assert config.load(tmp_path) is not config.load(tmp_path)  # a copy: a caller may change it


def test_integers_are_seconds_too(tmp_path):
    put(tmp_path, '{"lease_wait": 0, "lease_ttl": 5}')
    cfg, problems = config.load_checked(tmp_path)
    assert problems == [] and cfg["lease_wait"] == 0.0 and cfg["lease_ttl"] == 5.0
    assert isinstance(cfg["lease_ttl"], float)


def test_the_pydantic_model_is_built_from_the_same_values():
    """models.Config and the hook path agree: same keys, defaults and allowed values."""
    assert Config().model_dump() == config.DEFAULTS
    for key, choices in config.CHOICES.items():
        assert typing.get_args(Config.model_fields[key].annotation) == choices
    samples = ["deny", "warn", "off", "Deny", "", "-x", "human", "unattributed", "turn", "never", "auto",
               0, 0.5, -1, 10, True, None, float("inf"), "10", [], {}]
    for key in config.DEFAULTS:
        for value in samples:
            try:
                Config(**{key: value})
                model_ok = True
            except ValueError:
                model_ok = False
            assert model_ok == (config.check(key, value) is None), (key, value)


def test_write_keeps_working_and_round_trips(tmp_path):
    written = write_config(tmp_path, {**config.load(tmp_path), "lane": "human", "guard_git": "warn"})
    assert config.load_checked(tmp_path) == (written, []) and written["lane"] == "human"
    with pytest.raises(ValueError):
        write_config(tmp_path, {"guard_git": "Deny"})
    assert config.load(tmp_path) == written  # a refused write leaves the file as it was


def test_loading_does_not_import_pydantic(tmp_path):
    put(tmp_path, '{"guard_git": "Deny"}')
    code = (f"import sys; from vbranch.state import config; c, p = config.load_checked({str(tmp_path)!r}); "
            "assert p and c['guard_git'] == 'deny'; print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_partial_config_keeps_the_other_guards_on(make_repo, tmp_path):
    """Before: {"guard_git": "warn"} made the other keys a KeyError, and the hook let the write through."""
    repo = make_repo({"a.txt": "a\n"})
    VB(repo).init()
    put(repo / ".git" / "vbranch", '{"guard_outside": "warn", "guard_git": "Deny"}')
    s = Session(repo, "sess-a")
    s.start()
    code, out = s.pre("Bash", {"command": "git stash"}, "t1")
    assert code == 0 and "git stash" in (denied_reason(out) or "")  # the typo keeps the default: deny
    assert 'guard_git is "Deny"' in out["systemMessage"]  # and the user is told
    code, out = s.pre("Write", {"file_path": str(tmp_path / "outside.txt"), "content": "x"}, "t2")
    assert "outside the repository" in out["systemMessage"] and denied_reason(out) is None  # warn, as set
