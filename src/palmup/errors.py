"""Errors a user can cause (a bad value, a wrong path, a damaged file, a full disk). The CLI prints
them as one line, `palmup <command>: <what is wrong>; <what is valid or what to do>`, and exits
non-zero; every other exception is a programming error and keeps its traceback."""
from __future__ import annotations

import errno

# OSError numbers that describe the machine, not the code: printed as one line by the CLI.
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


class UserError(Exception):
  """Something the user can fix; the message says what is wrong and what to do."""


def environment_message(e: OSError) -> str | None:
  """One line for an OSError caused by the machine (full disk, read-only or forbidden path), else None."""
  if e.errno not in ENVIRONMENT_ERRNOS:
    return None
  where = f": {e.filename}" if e.filename else ""
  todo = ("free disk space (or use a --workdir on another disk), then rerun the same command: it resumes "
          "from the last checkpoint" if e.errno in (errno.ENOSPC, errno.EDQUOT)
          else "use a path you can write to")
  return f"{e.strerror or e}{where}; {todo}"
