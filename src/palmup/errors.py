"""Errors a user can cause (a bad value, a wrong path, a damaged file, a full disk). The CLI prints
them as one line, `palmup <command>: <what is wrong>; <what is valid or what to do>`, and exits
non-zero; every other exception is a programming error and keeps its traceback."""
from __future__ import annotations

import errno
import json

# OSError numbers that describe the machine, not the code: printed as one line by the CLI.
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


class UserError(Exception):
  """Something the user can fix; the message says what is wrong and what to do."""


def existing_dir(path, what: str, hint: str):
  """path as an existing directory (a run path, palmup.workdir.path), else a UserError naming it,
  what it should be and `hint`."""
  from palmup.workdir import path as run_path
  path = run_path(path)
  if not path.exists():
    raise UserError(f"{what} {path} does not exist; {hint}")
  if not path.is_dir():
    raise UserError(f"{what} {path} is a file, not a directory; {hint}")
  return path


def read_json(path, what: str, hint: str, keys: tuple[str, ...] = ()) -> dict:
  """The JSON object in `path` holding `keys`, else a UserError saying it is missing, unreadable or
  corrupt."""
  from palmup.workdir import path as run_path
  try:
    value = json.loads(run_path(path).read_text())
  except FileNotFoundError:
    raise UserError(f"{what} {path} is missing; {hint}") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UserError(f"{what} {path} is unreadable or corrupt ({type(e).__name__}: {e}); {hint}") from None
  missing = [k for k in keys if not isinstance(value, dict) or k not in value]
  if missing:
    raise UserError(f"{what} {path} is corrupt (no {', '.join(missing)}); {hint}")
  return value


def environment_message(e: OSError) -> str | None:
  """One line for an OSError caused by the machine (full disk, read-only or forbidden path), else None."""
  if e.errno not in ENVIRONMENT_ERRNOS:
    return None
  where = f": {e.filename}" if e.filename else ""
  todo = ("free disk space (or use a --workdir on another disk), then rerun the same command: it resumes "
          "from the last checkpoint" if e.errno in (errno.ENOSPC, errno.EDQUOT)
          else "use a path you can write to")
  return f"{e.strerror or e}{where}; {todo}"
