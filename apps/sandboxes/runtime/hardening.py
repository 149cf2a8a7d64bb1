"""How every sandbox's container is hardened: one source for every driver (docs/kubernetes.md).

The Docker driver turns these into HostConfig (runtime/docker.py, create), the Kubernetes driver
into a Pod's securityContext (runtime/kubernetes.py, sandbox_pod); the limits themselves (CPU,
memory, pids, tmpfs size, extra capabilities) come from the ContainerSpec, which the settings
fill (apps/sandboxes/specs.py). Tests assert both drivers against these names.
"""

from .base import ContainerSpec
from .sandboxd_client import CAPS as DAEMON_CAPS

# sandboxd is PID 1 as root (uid and gid 0): it switches to the sandbox user (ContainerSpec.user)
# for every command, and the kernel clears the capabilities below on that change of user.
RUN_AS_UID = 0
RUN_AS_GID = 0
# The root filesystem stays writable: templates install packages outside /workspace (snapshots
# commit them on Docker). /tmp is a size-capped tmpfs all the same.
READ_ONLY_ROOT = False
DROP_CAPABILITIES = ("ALL",)
NO_NEW_PRIVILEGES = True  # Docker: no-new-privileges; Kubernetes: allowPrivilegeEscalation false
PRIVILEGED = False
SECCOMP = "RuntimeDefault"  # the engine's default profile (Docker applies it unless told otherwise)
TMPFS_PATH = "/tmp"  # noqa: S108 (a tmpfs inside the sandbox)
TMPFS_OPTIONS = "rw,nosuid,nodev"
PRIVATE_IPC = True


def capabilities(spec: ContainerSpec) -> list[str]:
    """The capabilities added back after dropping all: sandboxd's own (DAEMON_CAPS) and the
    template's allow-listed ones, sorted."""
    return sorted(set(spec.cap_add) | set(DAEMON_CAPS))
