"""Reading API keys from where the config points, without ever echoing them."""

from __future__ import annotations

import os
from pathlib import Path

from exporter.config import files
from exporter.configkit.common import Credentials

# An API key is a line of text; anything larger is not a key file.
MAX_KEY_FILE_BYTES = 64 * 1024


class SecretError(ValueError):
    """Why a key could not be read. The message names the reference, never the value."""


def read_secret(cred: Credentials, base_dir: Path | None = None) -> str:
    if cred.api_key_env:
        value = os.environ.get(cred.api_key_env, "").strip()
        if not value:
            raise SecretError(f"environment variable {cred.api_key_env} is not set or empty")
        return value
    assert cred.api_key_file is not None
    path = Path(cred.api_key_file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        value = files.read_text(path, MAX_KEY_FILE_BYTES).strip()
    except files.FileProblem as exc:
        # The message says what is wrong with the file, never what is in it.
        raise SecretError(f"api_key_file {str(path)!r}: {exc.message}") from None
    if not value:
        raise SecretError(f"api_key_file {str(path)!r} is empty")
    return value
