"""`palmup` through its real CLI entry, with one fault injected into checkpoint saving when
PALMUP_FAULT=<fault>:<n> names one (for test_faults; faults strike the n-th save of the process):
  kill     SIGKILL to itself right after the save has started writing (mid-save)
  sigterm  SIGTERM to itself mid-save (the loop must finish the save, then stop)
  enospc   the write raises OSError(ENOSPC), as on a full disk
"""
import errno
import os
import signal
import sys

import orbax.checkpoint as ocp

from palmup import cli


def _inject(fault: str, nth: int):
  save, calls = ocp.CheckpointManager.save, [0]

  def faulty_save(self, step, *args, **kwargs):
    calls[0] += 1
    if calls[0] != nth:
      return save(self, step, *args, **kwargs)
    if fault == "enospc":
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.directory / str(step)))
    saved = save(self, step, *args, **kwargs)  # asynchronous: still writing when the signal lands
    os.kill(os.getpid(), {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM}[fault])
    return saved

  ocp.CheckpointManager.save = faulty_save


if __name__ == "__main__":
  if os.environ.get("PALMUP_FAULT"):
    name, n = os.environ["PALMUP_FAULT"].split(":")
    _inject(name, int(n))
  sys.argv[0] = "palmup"
  cli.run()
