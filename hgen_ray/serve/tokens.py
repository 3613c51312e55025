"""The app's secrets: one token for API clients, one per person, made on first start and kept with mode 0600.

A token is only ever read from its file and compared in constant time; it is never printed or logged.
People's tokens are also who they are: the answer a token sends is recorded under its person.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLIENT", "PERSON", "Tokens", "ensure_tokens", "person_name", "tokens_dir"]

CLIENT = "client"
PERSON = "person"
TOKEN_BYTES = 32  # 256 bits from the OS's CSPRNG


def tokens_dir(serve_dir: Path) -> Path:
    return serve_dir / "tokens"


def person_name(number: int) -> str:
    return f"person-{number}"


@dataclass(frozen=True)
class Tokens:
    client: str
    people: dict[str, str]  # person name -> token

    def holder(self, presented: str) -> tuple[str, str] | None:
        """``(CLIENT, "client")`` or ``(PERSON, name)`` for a known token, else None; every token is compared."""
        found = None
        for role, name, token in [(CLIENT, CLIENT, self.client), *((PERSON, n, t) for n, t in self.people.items())]:
            if hmac.compare_digest(presented.encode(), token.encode()):
                found = (role, name)
        return found


def _create_private(path: Path) -> None:
    """Give ``path`` a fresh token unless it holds one: mode 0600 from the start, and never half written.

    The token is written to a private temporary file and then linked into place, so a crash leaves either
    no token (made on the next start) or a whole one; an empty file from elsewhere is replaced.
    """
    if path.is_file() and path.read_text().strip():
        return
    draft = path.with_name(f".{path.name}.{os.getpid()}.new")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(draft, path)


def ensure_tokens(serve_dir: Path, people: int) -> Tokens:
    """The client's and ``people`` persons' tokens under ``serve_dir/tokens``, made where missing.

    The folder is 0700 and each file 0600; existing tokens are kept, so a restart does not log anyone out.
    """
    folder = tokens_dir(serve_dir)
    (folder / "people").mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (folder, folder / "people"):
        path.chmod(0o700)
    _create_private(folder / CLIENT)
    for number in range(1, people + 1):
        _create_private(folder / "people" / person_name(number))
    names = [person_name(number) for number in range(1, people + 1)]  # files beyond these are not read
    return Tokens((folder / CLIENT).read_text().strip(),
                  {name: (folder / "people" / name).read_text().strip() for name in names})
