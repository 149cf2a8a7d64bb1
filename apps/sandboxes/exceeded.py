"""A sandbox hit one of its own limits: its memory (the kernel's OOM killer killed its container),
its pids limit (a fork or thread failed: EAGAIN), or its disk limit (a write failed: ENOSPC or
EDQUOT on the container's size-limited filesystem). Published as the `sandbox.limit_exceeded`
event (data `limit` ∈ memory|pids|disk), in the transaction that records what the server learnt;
the webhooks app sends it as `resource.limit_exceeded`. A command's own end says pids and disk in
its `exec.finished` event's `limit` (its timeout and OOM kill are on its record already).

How each is learnt, at no cost when nothing went wrong:
- memory: a running row whose container is found exited (the reconcile pass, or a call into it)
  and whose engine state says OOMKilled;
- pids: a command's error output carries a failed fork/clone/thread start with "Resource
  temporarily unavailable" (bash, dash, Python, glibc say it so) when the sandbox has a pids limit;
- disk: a file or archive upload refused by sandboxd with ENOSPC (DiskFull), or a command's error
  output saying "No space left on device" / "Disk quota exceeded", when the sandbox has a disk
  limit (a host's full disk is no limit of the sandbox's).
"""

import re

from django.conf import settings

from . import events
from .models import Sandbox

EVENT = "sandbox.limit_exceeded"

_PIDS = re.compile(
    r"(fork|clone|thread|pthread_create)[^\n]{0,80}resource temporarily unavailable"  # bash, glibc, coreutils
    r"|resource temporarily unavailable[^\n]{0,80}(fork|clone|thread)"
    r"|cannot fork|can't fork|can't start new thread"  # dash, busybox; Python's threading
    r"|spawn[^\n]{0,200}EAGAIN",  # Node's child_process
    re.IGNORECASE,
)
# Python's os.fork() or subprocess (fork_exec) failing: the traceback names the call, then EAGAIN.
_PYTHON_FORK = re.compile(r"(os\.fork\(|fork_exec\()[\s\S]{0,600}BlockingIOError: \[Errno 11\]")
_DISK = ("no space left on device", "disk quota exceeded")


def publish(sandbox: Sandbox, limit: str, **data) -> None:
    """The event, in the caller's transaction (its webhook deliveries with it)."""
    events.publish(sandbox=sandbox, type=EVENT, text=f"{limit} limit exceeded", data={"limit": limit, **data})


def from_output(sandbox: Sandbox, stderr: str) -> str | None:
    """The limit a command's error output says it hit: `pids`, `disk`, or None."""
    if not stderr:
        return None
    if settings.VIBEBOX_PIDS_LIMIT and (_PIDS.search(stderr) or _PYTHON_FORK.search(stderr)):
        return "pids"
    if sandbox.disk and any(text in stderr.lower() for text in _DISK):
        return "disk"
    return None
