"""Tokens: private files, kept across restarts, and telling a client from a person."""

from __future__ import annotations

import stat
from pathlib import Path

from hgen_ray.serve.tokens import CLIENT, PERSON, ensure_tokens


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tokens_are_private_distinct_and_kept_across_restarts(tmp_path: Path) -> None:
    first = ensure_tokens(tmp_path, 2)
    folder = tmp_path / "tokens"
    assert _mode(folder) == 0o700 and _mode(folder / "people") == 0o700
    assert all(_mode(p) == 0o600 for p in [folder / "client", *(folder / "people").iterdir()])
    assert sorted(first.people) == ["person-1", "person-2"]
    assert len({first.client, *first.people.values()}) == 3 and len(first.client) >= 40
    again = ensure_tokens(tmp_path, 3)  # a restart with one more person keeps everyone's token
    assert again.client == first.client and again.people["person-1"] == first.people["person-1"]
    assert sorted(again.people) == ["person-1", "person-2", "person-3"]


def test_a_token_names_its_holder_and_anything_else_names_no_one(tmp_path: Path) -> None:
    tokens = ensure_tokens(tmp_path, 2)
    assert tokens.holder(tokens.client) == (CLIENT, "client")
    assert tokens.holder(tokens.people["person-2"]) == (PERSON, "person-2")
    assert tokens.holder(tokens.client[:-1]) is None and tokens.holder("") is None


def test_an_empty_token_file_is_replaced_and_stray_files_are_not_read(tmp_path: Path) -> None:
    ensure_tokens(tmp_path, 1)
    people = tmp_path / "tokens" / "people"
    (people / "person-1").write_text("")  # as a crash mid-write elsewhere would leave it
    (people / "person-x").write_text("not ours")
    tokens = ensure_tokens(tmp_path, 1)
    assert len(tokens.people["person-1"]) >= 40 and list(tokens.people) == ["person-1"]
    assert _mode(people / "person-1") == 0o600
    assert not [p for p in people.iterdir() if p.name.startswith(".")]  # no draft left behind
