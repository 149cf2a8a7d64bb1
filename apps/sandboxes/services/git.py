"""Git inside sandboxes: clone, pull, push, commit, checkout, status, diff, log, branches.

Every git command is an argument list; user input is never pasted into a shell string.

Two kinds of git run here:

- **As the sandbox user**, on the sandbox's repositories (status, diff, commit, checkout, merge,
  and clones, pulls and pushes that need no credentials). Nothing secret is involved, but the
  repository, the sandbox user's home and most of its PATH are writable with `sandboxes:write`
  alone (uploads, variables), so nothing there may choose a program git runs: that would be code
  execution without `execute`, and a `sandboxes:read` GET (status, diff) would trigger it. Every
  such git goes through `safe_git` (one argv and environment builder): `/bin/sh` and git from
  the system's directories (SYSTEM_PATH), none of the sandbox's variables, no system or global
  config, and git with no way to start a process (LOCAL_ONLY) except for clone, fetch and push,
  whose transports are pinned (SANDBOX_ENV, SANDBOX_CONFIG). See LOCAL_ONLY for why a list of
  `-c` overrides alone cannot do it.
- **The credentialed part** of a clone, pull or push (the only part that talks to the server
  with the owner's token or SSH key) runs in the sandbox's container as another user
  (RUNNER_USER, neither the sandbox user nor root): the sandbox's processes cannot read its
  environment, memory or files (a different uid, and sandboxes have no CAP_SYS_PTRACE or
  CAP_DAC_OVERRIDE), and it reads no config the sandbox controls: no system or global config,
  and a staging repository of its own in a private directory under /tmp whose objects come from
  the sandbox's repository through `objects/info/alternates` (data only). The URL is the one the
  owner gave at clone time (SandboxGitConfig.repo_url), never what `origin` says now; the
  credential helper is scoped to exactly that URL (`credential.<url>.helper`, useHttpPath), so
  a redirect to another host gets nothing. A pull fetches into the staging repository, which
  the sandbox user then fetches from (locally, no credentials) and merges. The token reaches the
  helper in that process's environment (passed by the engine, never in argv); an SSH key is a
  file in the private directory, with known hosts from the saved credentials.

Kept credentials (`auth.persist`) are stored encrypted, never in the sandbox.
"""

import contextlib
import json
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from apps.audit import services as audit
from vibebox import crypto
from vibebox import exceptions as errors

from ..models import Sandbox, SandboxGitConfig, new_execution_id
from ..runtime import ExecRequest, ExecResult, driver_for
from .env import SYSTEM_PATH, internal_env, redact
from .exec import require_running
from .lifecycle import container_running

DEFAULT_PATH = "/repo"
_SCP_URL = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)[^\s]+$")
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/@+-]{1,200}$")
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_STAGING = re.compile(r"^/tmp/vbx-git\.[A-Za-z0-9]{10}$")
_SCHEMES = {"https", "http", "ssh", "git"}
# The credentialed part runs as nobody: not the sandbox user (whose processes could read its
# environment and memory), not root (whose files the sandbox user might be able to make it read).
RUNNER_USER = "65534:65534"
MAX_HAVES = 2000  # refs of the sandbox's repository told to the server as what we have
# Answers only for the owner's scheme and host (git tells the helper what it asks for on stdin).
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; p=; h=; while IFS= read -r l; do case $l in '
    '"protocol=$VBX_GIT_PROTOCOL") p=1 ;; "host=$VBX_GIT_HOST") h=1 ;; esac; done; '
    '[ "$p$h" = 11 ] || exit 0; echo "username=$VBX_GIT_USERNAME"; echo "password=$VBX_GIT_TOKEN"; }; f'
)
# Every command the API runs in a sandbox starts from /bin/sh with SYSTEM_PATH (env.py): the images put a
# directory of the sandbox user's first (~/.local/bin, /opt/venv/bin), where an upload can put a
# `git` or `sh` (which the credentialed runner would then start with the token in its
# environment), and the sandbox's own variables are never used.
# The prelude of every script run by safe_git. `git` is a function that starts git with
# RLIMIT_NPROC 0, so that git cannot start any process or thread (fork and clone fail with
# EAGAIN for a user that is not root). That is the one control that does not depend on knowing
# the repository's config: the programs git runs on its own (a filter's clean/smudge/process,
# a merge driver, textconv and diff commands, gpg for signing or verifying, the pager, the
# editor, fsmonitor, hooks, `git status` in each submodule...) are mostly named by keys whose
# names the repository chooses (`filter.<any>.clean`, bound to paths by .gitattributes or by
# .git/info/attributes, which nothing can turn off), and the config can change between reading
# it and running git. Without a child process none of them can run, whatever the key or its
# include, and a filter that cannot start is skipped (as git does when its program is missing;
# one the repository marks `required` fails the call). Only clone, fetch and push need children
# (remote-http, ssh, index-pack, upload-pack): they run as `command git`, touch no working tree
# (a clone is made with --no-checkout, then checked out by a limited git), and what they may
# start is pinned by SANDBOX_ENV and SANDBOX_CONFIG. (bash's `ulimit -p` is the pipe size and
# fails: then -u. Neither: the command fails.)
LOCAL_ONLY = r"""git() { (ulimit -p 0 2>/dev/null || ulimit -u 0 || exit 125; exec git "$@"); }
"""
# After LOCAL_ONLY, when the commit identity is VibeBox's default (VBX_NAME, VBX_EMAIL): used
# only when the repository names none.
AUTHOR = """[ -n "$(git config user.name)" ] || export GIT_AUTHOR_NAME="$VBX_NAME" GIT_COMMITTER_NAME="$VBX_NAME"
[ -n "$(git config user.email)" ] || export GIT_AUTHOR_EMAIL="$VBX_EMAIL" GIT_COMMITTER_EMAIL="$VBX_EMAIL"
"""
LOCAL_GIT = 'git "$@"\n'  # one git command, without child processes
NETWORK_GIT = 'exec git "$@"\n'  # clone, fetch, push (see LOCAL_ONLY)
# Config of every git run as the sandbox user (command-line scope: it wins over the repository's
# own config and anything it includes). With LOCAL_ONLY these are what make the calls work
# (a hook, a signature or fsmonitor that cannot start would fail them); for clone, fetch and
# push they are the control.
SANDBOX_CONFIG = (
    ("core.hooksPath", "/dev/null"),  # no hook of the repository's (nor reference-transaction)
    ("core.fsmonitor", "false"),
    ("credential.helper", ""),  # an empty value drops every helper, credential.<url>.helper too
    ("core.askPass", ""),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("sequence.editor", "true"),
    # a fetch lists the refs of the repository's alternates with this command (run by a shell)
    ("core.alternateRefsCommand", "true"),
    ("commit.gpgSign", "false"),  # gpg.program, gpg.<format>.program, gpg.ssh.defaultKeyCommand
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("merge.verifySignatures", "false"),
    ("log.showSignature", "false"),
    ("submodule.recurse", "false"),  # a submodule's git reads the submodule's config
    ("fetch.recurseSubmodules", "false"),
    ("push.recurseSubmodules", "no"),
    ("gc.auto", "0"),  # no background gc or maintenance started by a fetch or commit
    ("maintenance.auto", "false"),
    # no threads either under LOCAL_ONLY: git would die on a large index
    ("core.preloadIndex", "false"),
    ("index.threads", "1"),
    ("checkout.workers", "1"),
)
SANDBOX_ENV = {
    "PATH": SYSTEM_PATH,
    # ~/.gitconfig and ~/.config/git/config are the sandbox's (an upload-pack or pack-objects hook
    # there runs in protected scope, in the upload-pack a credentialed pull starts), /etc/gitconfig
    # is the image's: git reads neither, only the repository's and the command line's.
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ATTR_NOSYSTEM": "1",
    # Transports: these protocols only, whatever protocol.<name>.allow the repository sets: no
    # ext:: or fd::, no remote helper that a rewritten URL (url.*.insteadOf) or remote.*.vcs
    # would start, no local path unless its upload-pack and receive-pack are pinned (OWN_PATH_*).
    # Fetches from a staging repository allow `file` alone.
    "GIT_ALLOW_PROTOCOL": "https:http:ssh:git",
    # ssh: this command whatever core.sshCommand says, and without ~/.ssh/config (ProxyCommand,
    # LocalCommand, KnownHostsCommand, Match exec); its keys and known_hosts are data.
    "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes",
    "GIT_SSH_VARIANT": "ssh",
    # Set and empty: git takes the first proxy command it finds, the environment's first, so
    # core.gitProxy (git://) is never read, and an empty one means no proxy.
    "GIT_PROXY_COMMAND": "",
    "GIT_NO_LAZY_FETCH": "1",  # a partial clone's promisor remote is never fetched from on the side
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",  # set and empty: core.askPass and SSH_ASKPASS are not tried
    "SSH_ASKPASS": "",
    "SSH_ASKPASS_REQUIRE": "never",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_OPTIONAL_LOCKS": "0",  # reads (status) never write the index
    "LC_ALL": "C",
}
STAGING_ENV = {"GIT_ALLOW_PROTOCOL": "file"}  # a clone or fetch from a staging repository


# A pull or push without credentials goes to the sandbox's own remote, which may be a path in the
# sandbox (`git remote add backup /workspace/backup.git`). Then `file` is allowed, and the
# upload-pack or receive-pack the local transport starts (through /bin/sh) is this command, not
# the remote's uploadpack/receivepack (--upload-pack/--receive-pack win; in config git keeps the
# first value it reads, the repository's). Its -c options are needed: git clears the caller's
# config environment for a local transport, so the receiving repository (the sandbox's too) would
# run its hooks, update a checked-out work tree (updateInstead runs its filters) or start gc.
# Only for a path: a server's ssh (GitHub's) accepts no command but git-upload-pack/receive-pack.
OWN_PATH_OPTIONS = " ".join(f"-c {key}={value}" for key, value in (
    ("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false"), ("core.alternateRefsCommand", "true"),
    ("receive.denyCurrentBranch", "refuse"), ("receive.autogc", "false"), ("gc.auto", "0"),
))  # fmt: skip
OWN_PATH_FETCH = [f"--upload-pack=git {OWN_PATH_OPTIONS} upload-pack"]
OWN_PATH_PUSH = [f"--receive-pack=git {OWN_PATH_OPTIONS} receive-pack"]
OWN_PATH_ENV = {"GIT_ALLOW_PROTOCOL": "file"}


# The runner's scripts start with this: only the config VibeBox gives (GIT_CONFIG_COUNT...),
# nothing of the container's environment that could redirect git, a private directory.
RUNNER_PRELUDE = r"""for v in $(env | sed -n 's/^\(GIT_[A-Za-z0-9_]*\)=.*/\1/p'); do
  case $v in GIT_CONFIG_COUNT|GIT_CONFIG_KEY_*|GIT_CONFIG_VALUE_*) ;; *) unset "$v" ;; esac
done
unset LD_PRELOAD LD_LIBRARY_PATH XDG_CONFIG_HOME
export PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
  GIT_TERMINAL_PROMPT=0 GIT_ASKPASS= SSH_ASKPASS= SSH_ASKPASS_REQUIRE=never
umask 077
find /tmp -maxdepth 1 -name 'vbx-git.*' -user 65534 -mmin +1440 -exec rm -rf {} + 2>/dev/null
S=$(mktemp -d /tmp/vbx-git.XXXXXXXXXX) || exit 70
mkdir "$S/home" && export HOME="$S/home" || exit 70
if [ -n "$VBX_SSH" ]; then
  mkdir "$S/ssh" && cat > "$S/ssh/key" && printf '%s\n' "$VBX_KNOWN_HOSTS" > "$S/ssh/known_hosts" || exit 70
  export GIT_SSH_COMMAND="ssh -F /dev/null -i $S/ssh/key -o IdentitiesOnly=yes -o IdentityAgent=none \
-o BatchMode=yes -o UserKnownHostsFile=$S/ssh/known_hosts -o GlobalKnownHostsFile=/dev/null \
-o StrictHostKeyChecking=$VBX_STRICT_HOSTS" GIT_SSH_VARIANT=ssh
fi
init() {
  git init -q --bare --template= "$S/r.git" || exit 70
  [ -z "$1" ] || printf '%s/objects\n' "$1" > "$S/r.git/objects/info/alternates" || exit 70
  [ -z "$VBX_SHALLOW" ] || printf '%s\n' $VBX_SHALLOW > "$S/r.git/shallow" || exit 70
  [ -z "$VBX_HAVES" ] || printf 'create refs/haves/%s %s\n' $VBX_HAVES | git --git-dir="$S/r.git" update-ref --stdin \
    2>/dev/null || true
}
"""
# Each runner script prints its private directory first (the caller removes it afterwards,
# also after a timeout). argv: URL [clone options...]: a bare clone, left readable.
RUNNER_CLONE = (
    RUNNER_PRELUDE
    + r"""echo "$S"
url=$1; shift
git clone -q --bare --template= "$@" -- "$url" "$S/r.git"; rc=$?
rm -rf "$S/ssh"; chmod -R a+rX "$S/r.git" 2>/dev/null; chmod 711 "$S"
exit $rc
"""
)
# argv: URL OBJECTS_DIR REFSPEC...: fetches into a staging repository that borrows the sandbox
# repository's objects (so only what is new comes), left readable for the sandbox user.
RUNNER_FETCH = (
    RUNNER_PRELUDE
    + r"""echo "$S"
url=$1; init "$2"; shift 2
git --git-dir="$S/r.git" fetch -q --no-write-fetch-head -- "$url" "$@"; rc=$?
rm -rf "$S/ssh"; chmod -R a+rX "$S/r.git" 2>/dev/null; chmod 711 "$S"
exit $rc
"""
)
# argv: URL OBJECTS_DIR REFSPEC [push options...]: pushes the sandbox's commit.
RUNNER_PUSH = (
    RUNNER_PRELUDE
    + r"""echo "$S"
url=$1 refspec=$3; init "$2"; shift 3
git --git-dir="$S/r.git" push --porcelain "$@" -- "$url" "$refspec" >/dev/null
"""
)
# argv: STAGING_DIR. Removes a staging directory (as the runner, who owns it).
RUNNER_CLEANUP = 'case $1 in /tmp/vbx-git.*) rm -rf -- "$1" ;; esac'
# argv: git diff arguments. `git diff` refreshes the index and writes it whatever
# GIT_OPTIONAL_LOCKS says: it works on a copy, so a read leaves the repository as it was. The
# copy keeps the index's mtime (cp -p): git re-reads a file changed in the second the index was
# written only when it sees that ("racily clean"); a newer copy hid such a change from the diff.
DIFF_SCRIPT = r"""i=$(git rev-parse --git-path index) || exit 128
t=$(mktemp) || exit 1
trap 'rm -f "$t" "$t.lock"' EXIT
if [ -f "$i" ]; then cp -p -- "$i" "$t" && export GIT_INDEX_FILE="$t" || exit 1; fi
git "$@"
"""
# argv: BRANCH (may be empty). What a pull or push needs to know about the sandbox's repository,
# one value per line: HEAD's commit, the common git directory, the current branch, its upstream
# (remote, merge ref), the tracking ref of BRANCH; then "shallow" and the shallow commits; then
# "haves" and the commits its refs point to.
INSPECT = r"""git rev-parse -q --verify 'HEAD^{commit}' || echo
git rev-parse --path-format=absolute --git-common-dir || exit 128
b=$(git symbolic-ref -q --short HEAD); echo "$b"
if [ -n "$b" ]; then git config "branch.$b.remote" || echo; git config "branch.$b.merge" || echo; else echo; echo; fi
[ -n "$1" ] && git rev-parse -q --verify "refs/remotes/origin/$1^{commit}" || echo
echo shallow
c=$(git rev-parse --path-format=absolute --git-common-dir); [ -f "$c/shallow" ] && head -n 10000 "$c/shallow"
echo haves
git for-each-ref --format='%(objectname)' refs/heads refs/remotes refs/tags | sort -u | head -n "$2"
exit 0
"""

# argv: COMMIT DESCRIPTION [ff-only]. A pull's merge, as `git merge --no-edit` would do it but under
# LOCAL_ONLY (`git merge` starts `git stash create` for a real merge): already up to date,
# a fast-forward, or a merge commit when git's merge is clean (a conflict changes nothing:
# exit 3, the conflicted paths on stdout). COMMIT "FETCH_HEAD" takes the commit `git fetch`
# marked for merging, and the message from FETCH_HEAD; else DESCRIPTION makes the message
# ("branch 'x' of <url>"). With "ff-only" (auto-pull webhooks) a merge that is not a fast-forward
# changes nothing: exit 4.
MERGE_SCRIPT = r"""m=$1
if [ "$m" = FETCH_HEAD ]; then
  f=$(git rev-parse --git-path FETCH_HEAD) || exit 128
  m=$(sed -n '/\tnot-for-merge\t/!{s/\t.*//p;q;}' "$f")
  [ -n "$m" ] || { echo "Nothing to merge: no upstream for the current branch; name the branch." >&2; exit 2; }
fi
m=$(git rev-parse -q --verify "$m^{commit}") || { echo "Nothing to merge." >&2; exit 2; }
h=$(git rev-parse -q --verify 'HEAD^{commit}') || h=
if [ -z "$h" ]; then  # an unborn branch takes the commit as it is
  git read-tree -m -u "$(git hash-object -t tree /dev/null)" "$m" && git update-ref -m "pull: initial pull" HEAD "$m" ""
  exit
fi
git merge-base --is-ancestor "$m" "$h" && exit 0
if git merge-base --is-ancestor "$h" "$m"; then git merge -q --ff-only --no-stat "$m"; exit; fi
[ "$3" != ff-only ] || { echo "Not a fast-forward: the branch and the fetched commit have diverged." >&2; exit 4; }
git diff-index --cached --quiet "$h" -- || { echo "The index has staged changes: commit them first." >&2; exit 2; }
out=$(git merge-tree --write-tree --name-only --no-messages "$h" "$m"); rc=$?
if [ "$rc" = 1 ]; then printf '%s\n' "$out" | tail -n +2 | sort -u; exit 3; fi
[ "$rc" = 0 ] || exit "$rc"
t=$(printf '%s\n' "$out" | head -n 1)
git read-tree -m -u "$h" "$t" || exit
if [ "$1" = FETCH_HEAD ]; then msg=$(git fmt-merge-msg -F "$f")
else msg=$(printf '%s\t\t%s\n' "$m" "$2" | git fmt-merge-msg); fi
c=$(git commit-tree "$t" -p "$h" -p "$m" -m "$msg") || exit
git update-ref -m "pull: Merge made by the 'ort' strategy." HEAD "$c" "$h" && git update-ref ORIG_HEAD "$h"
"""
# A clone's working tree (cloned with --no-checkout: see LOCAL_ONLY).
CHECKOUT_SCRIPT = r"""git rev-parse -q --verify HEAD >/dev/null || exit 0
git read-tree --reset -u HEAD
"""


@dataclass(frozen=True)
class GitAuth:
    type: str  # "token" or "ssh"
    token: str = ""
    username: str = ""
    private_key: str = ""
    known_hosts: str = ""
    persist: bool = False

    def secrets(self) -> list[str]:
        return [value for value in (self.token, self.private_key) if value]

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "persist"})


# ---- validation ----


def parse_auth(raw) -> GitAuth | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in ("token", "ssh"):
        raise errors.InvalidGitAuth(
            "auth is {type: 'token', token, username?} or {type: 'ssh', privateKey, knownHosts?}."
        )
    allowed = (
        {"type", "persist", "token", "username"}
        if raw["type"] == "token"
        else {"type", "persist", "privateKey", "knownHosts"}
    )
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise errors.InvalidGitAuth(f"Unknown auth fields: {', '.join(unknown)}.")
    values = {k: raw.get(k, "") for k in allowed - {"type", "persist"}}
    if not all(isinstance(v, str) for v in values.values()) or any("\0" in v for v in values.values()):
        raise errors.InvalidGitAuth("Credential values are strings.")
    persist = bool(raw.get("persist", False))
    if raw["type"] == "token":
        if not values["token"] or "\n" in values["token"] + values["username"]:
            raise errors.InvalidGitAuth("A token auth needs a one-line token.")
        return GitAuth("token", token=values["token"], username=values["username"], persist=persist)
    key = values["privateKey"]
    if "PRIVATE KEY" not in key:
        raise errors.InvalidGitAuth("privateKey is a PEM/OpenSSH private key.")
    return GitAuth("ssh", private_key=key.rstrip("\n") + "\n", known_hosts=values["knownHosts"], persist=persist)


def clean_url(url) -> tuple[str, GitAuth | None]:
    """The URL without credentials (which become a token auth), after checking its transport."""
    if not isinstance(url, str) or not url or len(url) > 2048 or any(ch in url for ch in "\0\n\r\t "):
        raise errors.InvalidGitUrl()
    if url.startswith("-"):
        raise errors.InvalidGitUrl("A URL cannot start with '-'.")
    if _SCP_URL.match(url):
        return url, None
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise errors.InvalidGitUrl("Use an https://, http://, ssh://, git:// or user@host:path URL.")
    if parts.password and parts.scheme in ("http", "https"):
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return clean, GitAuth("token", token=parts.password, username=parts.username or "")
    return url, None


def check_ref(name: str, what: str = "branch") -> str:
    if not isinstance(name, str) or not _REF.match(name):
        raise errors.InvalidGitRef(f"Invalid {what} name.", details={what: str(name)[:200]})
    return name


def repo_path(path: str | None) -> str:
    path = path or DEFAULT_PATH
    if "\0" in path or "\n" in path:
        raise errors.InvalidPath("Paths may not contain NUL or newline characters.")
    return posixpath.normpath(posixpath.join("/workspace", path))


# ---- running git ----


def _sanitise(text: str, auth: GitAuth | None) -> str:
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1", text)  # user:password@ in URLs
    return redact(text, auth.secrets() if auth else [])[-2000:]


def _config_env(pairs) -> dict[str, str]:
    """Config as GIT_CONFIG_COUNT/KEY/VALUE variables: command-line scope (it wins over the
    repository's config and its includes, as `-c` does), and nothing is parsed out of a value."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def safe_git(
    sandbox: Sandbox, script: str, args=(), *, path: str | None, author: dict | None = None,
    extra_config: tuple = (), extra_env: dict | None = None,
) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """The argv and environment of every git the API runs as the sandbox user: `script` (sh,
    its git commands written `git`, or `exec git`/`command git` for a clone, fetch or push) after
    LOCAL_ONLY, run by /bin/sh with SANDBOX_ENV and SANDBOX_CONFIG (see the module docstring).
    The environment is the template's (the sandbox's own variables are the key holder's to set:
    a PATH or LD_PRELOAD of theirs would choose what runs) without its GIT_* variables."""
    env = {k: v for k, v in internal_env(sandbox).items() if not k.startswith("GIT_")}
    pairs = [*SANDBOX_CONFIG, *extra_config, *([("safe.directory", path)] if path else [])]
    env |= {**SANDBOX_ENV, **_config_env(pairs), **(extra_env or {})}
    if author is not None:
        script = AUTHOR + script
        env |= {"VBX_NAME": author["name"], "VBX_EMAIL": author["email"]}
    return ["/bin/sh", "-c", LOCAL_ONLY + script, "sh", *args], env


def run_git(
    sandbox: Sandbox,
    args: list[str],
    *,
    path: str | None,
    author: dict | None = None,
    timeout: float | None = None,
    output_limit: int = 4 * 1024 * 1024,
    extra_config: tuple = (),
    extra_env: dict | None = None,
    network: bool = False,
) -> ExecResult:
    """One git command as the sandbox user (safe_git); `network` for clone, fetch and push only."""
    argv, env = safe_git(sandbox, NETWORK_GIT if network else LOCAL_GIT, args, path=path, author=author,
                         extra_config=extra_config, extra_env=extra_env)  # fmt: skip
    return _exec(sandbox, argv, user=sandbox.template.user, env=env, workdir=path or "/", timeout=timeout,
                 output_limit=output_limit)  # fmt: skip


def run_git_script(
    sandbox: Sandbox, script: str, args: list[str], *, path: str | None, author: dict | None = None,
    timeout: float | None = None, output_limit: int = 4 * 1024 * 1024,
) -> ExecResult:  # fmt: skip
    """A small sh script of git commands, as the sandbox user (safe_git)."""
    argv, env = safe_git(sandbox, script, args, path=path, author=author)
    return _exec(sandbox, argv, user=sandbox.template.user, env=env, workdir=path or "/", timeout=timeout,
                 output_limit=output_limit)  # fmt: skip


def _exec(sandbox, argv, *, user, env, workdir="/", stdin=None, timeout=None, output_limit=4 * 1024 * 1024):
    # /bin/sh and SYSTEM_PATH: see SYSTEM_PATH (the runner gets the owner's token in its environment).
    if argv[0] != "/bin/sh":
        raise ValueError("git commands run by /bin/sh")
    request = ExecRequest(
        argv=tuple(argv),
        exec_id=new_execution_id(),
        env={**env, "PATH": SYSTEM_PATH},
        user=user,
        workdir=workdir,
        stdin=stdin,
        timeout=timeout or settings.VIBEBOX_GIT_TIMEOUT,
        output_limit=output_limit,
    )
    with container_running(sandbox):
        return driver_for(sandbox).exec(sandbox.container_name, request)


def _runner_config(url: str, auth: GitAuth) -> dict[str, str]:
    """The runner's whole git config, as GIT_CONFIG_COUNT variables (a URL may hold '=', which
    `-c` would split on)."""
    pairs = [
        ("protocol.allow", "never"),
        *((f"protocol.{scheme}.allow", "always") for scheme in sorted(_SCHEMES)),
        ("core.hooksPath", "/dev/null"),
        ("core.fsmonitor", "false"),
        ("core.askPass", ""),
        ("core.alternateRefsCommand", "true"),  # never run git in the sandbox's repository
        ("credential.helper", ""),
        ("gc.auto", "0"),
        ("maintenance.auto", "false"),
        ("advice.defaultBranchName", "false"),
    ]
    if auth.type == "token":
        # Only for the owner's host: the helper is configured for it alone and checks again what
        # git asks for, so a redirect elsewhere (or any other URL) gets nothing.
        pairs.append((f"credential.{_origin(url)}.helper", CREDENTIAL_HELPER))
    return _config_env(pairs)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{_host(url)}"


def _host(url: str) -> str:
    """host[:port] as git's credential protocol says it (IPv6 in brackets)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _run_runner(sandbox: Sandbox, script: str, args: list[str], *, url: str, auth: GitAuth, state=None):
    """A credentialed git script as RUNNER_USER; the token travels in the environment the engine
    gives that process (never argv, never a file), an SSH key through stdin into a private file."""
    env = _runner_config(url, auth)
    stdin = None
    if auth.type == "token":
        env |= {"VBX_GIT_TOKEN": auth.token, "VBX_GIT_USERNAME": auth.username or "x-access-token",
                "VBX_GIT_PROTOCOL": urlsplit(url).scheme, "VBX_GIT_HOST": _host(url)}  # fmt: skip
    else:
        strict = "yes" if auth.known_hosts else "accept-new"
        env |= {"VBX_SSH": "1", "VBX_KNOWN_HOSTS": auth.known_hosts, "VBX_STRICT_HOSTS": strict}
        stdin = auth.private_key.encode()
    if state is not None:
        env |= {
            "VBX_SHALLOW": " ".join(state.shallow),
            "VBX_HAVES": " ".join(f"{i} {sha}" for i, sha in enumerate(state.haves)),
        }
    result = _exec(sandbox, ["/bin/sh", "-c", script, "sh", *args], user=RUNNER_USER, env=env, workdir="/",
                   stdin=stdin)  # fmt: skip
    first = result.stdout.split(b"\n", 1)[0].decode(errors="replace")
    return result, (first if _STAGING.match(first) else None)


def _from_staging(staging: str) -> list[str]:
    """Options for the sandbox user's git reading a staging repository (owned by the runner: git
    refuses another user's repository, and clears config variables for the upload-pack it runs)."""
    if not _STAGING.match(staging):  # it goes into a command line: only the shape mktemp makes
        raise errors.GitFailed("Unexpected staging directory.")
    return ["--upload-pack", f"git -c safe.directory={staging}/r.git upload-pack"]


def _trust(staging: str) -> tuple:
    return (("safe.directory", f"{staging}/r.git"),)


def _cleanup(sandbox: Sandbox, staging: str | None) -> None:
    if not staging:
        return
    with contextlib.suppress(errors.ApplicationError):  # else swept by a later credentialed command
        _exec(sandbox, ["/bin/sh", "-c", RUNNER_CLEANUP, "sh", staging], user=RUNNER_USER, env={}, timeout=60)


def _check(result: ExecResult, auth: GitAuth | None, failure=errors.GitFailed) -> str:
    if result.timed_out:
        raise failure("The git command timed out.")
    stderr = result.stderr.decode(errors="replace")
    if result.exit_code != 0:
        message = _sanitise(stderr.strip() or result.stdout.decode(errors="replace").strip(), auth)
        lowered = message.lower()
        if "not a git repository" in lowered:
            raise errors.NotAGitRepository(message)
        if any(
            s in lowered for s in ("authentication failed", "permission denied (publickey", "could not read username")
        ):
            raise errors.GitAuthFailed(message, details={"git": message})
        if "no user exists for uid" in lowered:
            message += " (the template's image needs a passwd entry for uid 65534, nobody, for SSH)"
        raise failure(message, details={"git": message})
    return result.stdout.decode(errors="replace")


def _git(
    sandbox, args, *, path, author=None, failure=errors.GitFailed, network=False, staging=None, own_path=False
) -> str:
    """`staging`: the command reads that staging repository (trusted, `file` transport only);
    `own_path`: it fetches from or pushes to a path in the sandbox (OWN_PATH_*)."""
    extra_config, extra_env = (_trust(staging), STAGING_ENV) if staging else ((), None)
    if own_path:
        extra_env = OWN_PATH_ENV
    result = run_git(sandbox, args, path=path, author=author, extra_config=extra_config, extra_env=extra_env,
                     network=network)  # fmt: skip
    return _check(result, None, failure)


def _stored(sandbox: Sandbox, path: str) -> SandboxGitConfig | None:
    return SandboxGitConfig.objects.filter(sandbox=sandbox, path=path).first()


def _stored_auth(config: SandboxGitConfig | None) -> GitAuth | None:
    if config is None or not config.auth:
        return None
    return GitAuth(**json.loads(crypto.decrypt(config.auth)))


def _head(sandbox: Sandbox, path: str) -> str:
    return _git(sandbox, ["rev-parse", "HEAD"], path=path).strip()


@dataclass
class _RepoState:
    """What a credentialed pull or push needs to know of the sandbox's repository (which the
    sandbox controls: every field is checked before use)."""

    head: str
    common_dir: str
    branch: str
    upstream_remote: str
    upstream_merge: str
    tracking: str
    shallow: list[str]
    haves: list[str]


def _inspect(sandbox: Sandbox, target: str, branch: str | None) -> _RepoState:
    result = run_git_script(sandbox, INSPECT, [branch or "", str(MAX_HAVES)], path=target)
    text = _check(result, None)
    lines = text.split("\n")
    head, common, current, remote, merge, tracking = (lines + [""] * 6)[:6]
    rest = lines[6:]
    shallow_at = rest.index("shallow") if "shallow" in rest else len(rest)
    haves_at = rest.index("haves") if "haves" in rest else len(rest)
    shallow = [line for line in rest[shallow_at + 1 : haves_at] if _SHA.match(line)]
    haves = [line for line in rest[haves_at + 1 :] if _SHA.match(line)][:MAX_HAVES]
    if not common.startswith("/") or len(common) > 4096 or "\0" in common:
        raise errors.GitFailed("The repository's git directory could not be found.")
    return _RepoState(
        head=head if _SHA.match(head) else "",
        common_dir=posixpath.normpath(common),
        branch=current if current and _REF.match(current) else "",
        upstream_remote=remote,
        upstream_merge=merge,
        tracking=tracking if _SHA.match(tracking) else "",
        shallow=shallow,
        haves=haves,
    )


def _pinned(sandbox: Sandbox, target: str, remote: str, given: GitAuth | None) -> tuple[str, GitAuth] | None:
    """(URL, credentials) for a credentialed pull or push, or None when there are none. The URL
    is the one the owner cloned from, whatever the repository's remotes say now."""
    config = _stored(sandbox, target)
    credentials = given or _stored_auth(config)
    if credentials is None:
        return None
    if config is None or remote != "origin":
        raise errors.InvalidGitAuth(
            "Credentials are only sent to the URL the repository was cloned from through the API "
            "(its remote 'origin'); clone it through the API first.",
            details={"path": target, "remote": remote},
        )
    return config.repo_url, credentials


# ---- operations ----


def parse_spec(raw) -> dict:
    """`git` at create: a URL, or {url, branch, path, depth, auth, failOnError}."""
    spec = {"url": raw} if isinstance(raw, str) else raw
    if not isinstance(spec, dict):
        raise errors.InvalidGitUrl("git is a URL or an object with a url.")
    unknown = sorted(set(spec) - {"url", "branch", "path", "depth", "auth", "failOnError"})
    if unknown:
        raise errors.UnknownField(f"Unknown git fields: {', '.join(unknown)}.", details={"fields": unknown})
    clean_url(spec.get("url"))
    if spec.get("branch") is not None:
        check_ref(spec["branch"])
    depth = spec.get("depth")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise errors.ValidationFailed("git.depth is a positive integer.")
    parse_auth(spec.get("auth"))
    return spec


def git_clone(
    *, sandbox: Sandbox, url: str, branch: str | None = None, path: str | None = None, depth: int | None = None,
    auth=None, creating: bool = False,
) -> dict:  # fmt: skip
    if not creating:
        require_running(sandbox)
    clean, url_auth = clean_url(url)
    credentials = parse_auth(auth) if isinstance(auth, dict) else auth
    credentials = credentials or url_auth
    target = repo_path(path)
    options = ["--branch", check_ref(branch)] if branch else []
    if depth:
        options += ["--depth", str(int(depth))]
    # --no-checkout: the working tree is written afterwards under LOCAL_ONLY (the new repository's
    # config and info/attributes are writable by uploads while the clone runs).
    if credentials is None:  # nothing to hide: the sandbox user clones
        _git(sandbox, ["clone", "--no-checkout", "--no-hardlinks", *options, "--", clean, target], path=None,
             failure=errors.GitCloneFailed, network=True)  # fmt: skip
    else:
        result, staging = _run_runner(sandbox, RUNNER_CLONE, [clean, *options], url=clean, auth=credentials)
        try:
            _check(result, credentials, errors.GitCloneFailed)
            if staging is None:
                raise errors.GitCloneFailed("The git command failed to start.")
            # The sandbox user copies the staged clone (depth: through upload-pack, which keeps it).
            source = f"file://{staging}/r.git" if depth else f"{staging}/r.git"
            clone = ["clone", "-q", "--no-checkout", "--no-hardlinks", *_from_staging(staging), *options]
            _git(sandbox, [*clone, "--", source, target], path=None, failure=errors.GitCloneFailed, network=True,
                 staging=staging)  # fmt: skip
            _git(sandbox, ["remote", "set-url", "origin", clean], path=target)
        finally:
            _cleanup(sandbox, staging)
    _check(run_git_script(sandbox, CHECKOUT_SCRIPT, [], path=target), None, errors.GitCloneFailed)
    current = _git(sandbox, ["rev-parse", "--abbrev-ref", "HEAD"], path=target).strip()
    SandboxGitConfig.objects.update_or_create(
        sandbox=sandbox,
        path=target,
        defaults={
            "repo_url": clean,
            "branch": branch or current,
            "auth": crypto.encrypt(credentials.to_json()) if credentials and credentials.persist else "",
            "cloned_at": timezone.now(),
        },
    )
    done = {"path": target, "url": clean, "branch": current, "commit": _head(sandbox, target)}
    audit.record("git.cloned", target=sandbox, changes=done)  # the URL without credentials
    return done


def git_pull(
    *, sandbox: Sandbox, path=None, remote: str = "origin", branch=None, auth=None, user=None, ff_only=False
) -> dict:
    """`ff_only`: a fast-forward or nothing (a diverged branch is GitFailed with details.git
    "not a fast-forward" and leaves the tree alone); the auto-pull webhooks pull this way."""
    require_running(sandbox)
    target = repo_path(path)
    check_ref(remote, "remote")
    if branch:
        check_ref(branch)
    pinned = _pinned(sandbox, target, remote, parse_auth(auth) if auth is not None else None)
    before = _head(sandbox, target)
    if pinned is None:  # no credentials: the sandbox user fetches from its own remote, and merges
        own_path = _remote_is_path(sandbox, target, remote)
        fetch = ["fetch", "-q", "--no-recurse-submodules", *(OWN_PATH_FETCH if own_path else [])]
        fetch += ["--", remote, *([branch] if branch else [])]
        _git(sandbox, fetch, path=target, network=True, own_path=own_path)
        _merge(sandbox, target, "FETCH_HEAD", "", user, ff_only)
    else:
        url, credentials = pinned
        state = _inspect(sandbox, target, branch)
        if not branch:
            merge = state.upstream_merge.removeprefix("refs/heads/")
            if state.upstream_remote != "origin" or not _REF.match(merge):
                raise errors.GitFailed("The current branch has no upstream on origin; name the branch to pull.")
            branch = merge
        result, staging = _run_runner(
            sandbox, RUNNER_FETCH, [url, state.common_dir, "+refs/heads/*:refs/remotes/origin/*"],
            url=url, auth=credentials, state=state,
        )  # fmt: skip
        try:
            _check(result, credentials)
            if staging is None:
                raise errors.GitFailed("The git command failed to start.")
            # No credentials from here on: the sandbox user takes what was fetched, and merges.
            fetch = ["fetch", "-q", "--no-write-fetch-head", "--no-recurse-submodules", *_from_staging(staging)]
            _git(sandbox, [*fetch, "--", f"{staging}/r.git", "+refs/remotes/origin/*:refs/remotes/origin/*"],
                 path=target, network=True, staging=staging)  # fmt: skip
        finally:
            _cleanup(sandbox, staging)
        _merge(sandbox, target, f"refs/remotes/origin/{branch}", f"branch '{branch}' of {url}", user, ff_only)
    after = _head(sandbox, target)
    done = {"path": target, "before": before, "commit": after, "updated": before != after}
    audit.record("git.pulled", target=sandbox, changes={**done, "remote": remote, "branch": branch})
    return done


def _merge(sandbox: Sandbox, target: str, commit: str, description: str, user, ff_only: bool = False) -> None:
    """A pull's merge (MERGE_SCRIPT); a conflict changes nothing and answers which paths."""
    args = [commit, description, *(["ff-only"] if ff_only else [])]
    result = run_git_script(sandbox, MERGE_SCRIPT, args, path=target, author=default_author(user))
    if result.exit_code == 4 and ff_only and not result.timed_out:
        raise errors.GitFailed(
            "Not a fast-forward: the sandbox's branch and the pushed branch have diverged; nothing was changed.",
            details={"git": "not a fast-forward"},
        )
    if result.exit_code == 3 and not result.timed_out:
        paths = [p for p in result.stdout.decode(errors="replace").splitlines() if p][:100]
        raise errors.GitFailed(
            f"The merge conflicts in {', '.join(paths)[:1000]}; nothing was changed. The fetched commits are in "
            f"{'FETCH_HEAD' if commit == 'FETCH_HEAD' else commit}: merge them with the sandbox's own git.",
            details={"conflicts": paths, "git": "merge conflict"},
        )
    _check(result, None)


def _remote_is_path(sandbox, target: str, remote: str, *, push: bool = False) -> bool:
    """Whether `remote` (a name, or itself a URL or path) leads to a path in the sandbox, as git
    would resolve it now (insteadOf applied). The sandbox could change it before git runs: then
    `file` is not allowed (a path) or the command fails, no program of its own runs either way."""
    result = run_git(sandbox, ["remote", "get-url", *(["--push"] if push else []), "--", remote], path=target)
    url = result.stdout.decode(errors="replace").strip() if result.exit_code == 0 else remote
    return url.startswith(("/", "./", "../", "file:")) or ("://" not in url and ":" not in url.split("/")[0])


def git_push(
    *, sandbox: Sandbox, path=None, remote: str = "origin", branch=None, auth=None, set_upstream=False, force=False
) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    check_ref(remote, "remote")
    pinned = _pinned(sandbox, target, remote, parse_auth(auth) if auth is not None else None)
    branch = check_ref(branch) if branch else _git(sandbox, ["rev-parse", "--abbrev-ref", "HEAD"], path=target).strip()
    check_ref(branch)
    if pinned is None:  # no credentials: the sandbox user pushes to its own remote
        own_path = _remote_is_path(sandbox, target, remote, push=True)
        args = ["push", "--porcelain", "--no-verify", "--no-recurse-submodules", *(OWN_PATH_PUSH if own_path else [])]
        args += (["--set-upstream"] if set_upstream else []) + (["--force-with-lease"] if force else [])
        _git(sandbox, [*args, "--", remote, f"HEAD:refs/heads/{branch}"], path=target, network=True, own_path=own_path)
        return _pushed(
            sandbox, {"path": target, "remote": remote, "branch": branch, "commit": _head(sandbox, target)}, force
        )
    url, credentials = pinned
    state = _inspect(sandbox, target, branch)
    if not state.head:
        raise errors.GitFailed("Nothing to push: the repository has no commit.")
    options = [f"--force-with-lease=refs/heads/{branch}:{state.tracking}"] if force else []
    result, staging = _run_runner(
        sandbox, RUNNER_PUSH, [url, state.common_dir, f"{state.head}:refs/heads/{branch}", *options],
        url=url, auth=credentials, state=state,
    )  # fmt: skip
    try:
        _check(result, credentials)
    finally:
        _cleanup(sandbox, staging)
    # What `git push` does for the sandbox's own view of the remote.
    _git(sandbox, ["update-ref", f"refs/remotes/origin/{branch}", state.head], path=target)
    if set_upstream and state.branch:
        _git(sandbox, ["config", f"branch.{state.branch}.remote", "origin"], path=target)
        _git(sandbox, ["config", f"branch.{state.branch}.merge", f"refs/heads/{branch}"], path=target)
    return _pushed(sandbox, {"path": target, "remote": remote, "branch": branch, "commit": state.head}, force)


def _pushed(sandbox: Sandbox, done: dict, force: bool) -> dict:
    audit.record("git.pushed", target=sandbox, changes={**done, "force": force})
    return done


def default_author(user) -> dict:
    name = settings.VIBEBOX_GIT_AUTHOR_NAME or (user.get_full_name() if user else "") or (user.username if user else "")
    email = settings.VIBEBOX_GIT_AUTHOR_EMAIL or (user.email if user else "") or f"{name or 'vibebox'}@vibebox.local"
    return {"name": name or settings.VIBEBOX_BRAND_NAME, "email": email}


def git_commit(
    *, sandbox: Sandbox, message: str, path=None, all: bool = False, author=None, allow_empty=False, user=None
) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    if not isinstance(message, str) or not message.strip():
        raise errors.ValidationFailed("message is required.")
    if all:
        _git(sandbox, ["add", "--all"], path=target)
    args = ["commit", "--no-verify", "-m", message]
    if allow_empty:
        args.append("--allow-empty")
    given = author is not None
    if given:
        if not isinstance(author, dict) or not author.get("name") or not author.get("email"):
            raise errors.ValidationFailed("author is {name, email}.")
        args += ["--author", f"{author['name']} <{author['email']}>"]
    result = run_git(sandbox, args, path=target, author=author if given else default_author(user))
    if result.exit_code == 1 and b"nothing to commit" in result.stdout + result.stderr:
        raise errors.NothingToCommit()
    _check(result, None)
    done = {"path": target, "commit": _head(sandbox, target), "message": message}
    audit.record("git.committed", target=sandbox, changes=done)
    return done


def git_checkout(*, sandbox: Sandbox, branch: str, path=None, create: bool = False) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    args = ["checkout", "-b", check_ref(branch)] if create else ["checkout", check_ref(branch), "--"]
    _git(sandbox, args, path=target)
    done = {"path": target, "branch": branch, "commit": _head(sandbox, target)}
    audit.record("git.checked_out", target=sandbox, changes={**done, "create": create})
    return done


def git_status(*, sandbox: Sandbox, path=None) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    # (--ignore-submodules=dirty: whether a submodule's files changed is a `git status` in it, a
    # child process; a submodule at another commit is still reported)
    args = ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all", "--ignore-submodules=dirty"]
    raw = _git(sandbox, args, path=target)
    status = {"path": target, "branch": None, "upstream": None, "ahead": 0, "behind": 0, "commit": None}
    staged, unstaged, untracked, conflicted = [], [], [], []
    fields = raw.split("\0")
    i = 0
    while i < len(fields):
        line = fields[i]
        i += 1
        if line.startswith("# branch.head "):
            status["branch"] = line.split(" ", 2)[2]
        elif line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            status["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.upstream "):
            status["upstream"] = line.split(" ", 2)[2]
        elif line.startswith("# branch.ab "):
            ahead, behind = line.split(" ")[2:4]
            status["ahead"], status["behind"] = int(ahead), abs(int(behind))
        elif line.startswith(("1 ", "2 ")):
            parts = line.split(" ", 8 if line[0] == "1" else 9)
            xy, name = parts[1], parts[-1]
            if line[0] == "2":
                i += 1  # the original path of a rename follows
            if xy[0] != ".":
                staged.append({"path": name, "status": xy[0]})
            if xy[1] != ".":
                unstaged.append({"path": name, "status": xy[1]})
        elif line.startswith("u "):
            conflicted.append(line.split(" ", 10)[-1])
        elif line.startswith("? "):
            untracked.append(line[2:])
    status |= {"staged": staged, "unstaged": unstaged, "untracked": untracked, "conflicted": conflicted}
    status["clean"] = not (staged or unstaged or untracked or conflicted)
    return status


def git_diff(*, sandbox: Sandbox, path=None, staged: bool = False, file: str | None = None) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    base = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--ignore-submodules=dirty"]
    base += ["--cached"] if staged else []
    limit = ["--", file] if file else []
    if file is not None and ("\0" in file or file.startswith("-")):
        raise errors.InvalidPath()
    text_result = run_git_script(
        sandbox, DIFF_SCRIPT, [*base, *limit], path=target, output_limit=settings.VIBEBOX_GIT_DIFF_LIMIT
    )
    text = _check(text_result, None)
    numstat = _check(run_git_script(sandbox, DIFF_SCRIPT, [*base, "--numstat", "-z", *limit], path=target), None)
    files = []
    for record in filter(None, numstat.split("\0")):
        added, deleted, name = [*record.split("\t", 2), "", ""][:3]
        files.append(
            {
                "path": name,
                "additions": int(added) if added.isdigit() else None,
                "deletions": int(deleted) if deleted.isdigit() else None,
                "binary": added == "-",
            }
        )
    return {"path": target, "staged": staged, "diff": text, "truncated": text_result.truncated, "files": files}


def git_log(*, sandbox: Sandbox, path=None, limit: int | str = 20) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    try:
        limit = max(1, min(int(limit), 500))
    except (TypeError, ValueError):
        raise errors.ValidationFailed("limit is a number.") from None
    raw = _git(sandbox, ["log", f"-n{limit}", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1e"], path=target)
    commits = []
    for record in filter(None, (r.strip("\n") for r in raw.split("\x1e"))):
        sha, name, email, date, subject = record.split("\x1f", 4)
        commits.append({"sha": sha, "author": {"name": name, "email": email}, "date": date, "message": subject})
    return {"path": target, "commits": commits}


def git_branches(*, sandbox: Sandbox, path=None) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    fmt = "%(refname)%1f%(objectname)%1f%(HEAD)%1f%(upstream:short)"
    raw = _git(sandbox, ["branch", "--all", f"--format={fmt}"], path=target)
    branches, current = [], None
    for line in filter(None, raw.splitlines()):
        ref, sha, head, upstream = [*line.split("\x1f"), "", "", ""][:4]
        remote = ref.startswith("refs/remotes/")
        name = ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
        if head == "*":
            current = name
        branches.append(
            {"name": name, "commit": sha, "current": head == "*", "remote": remote, "upstream": upstream or None}
        )
    return {"path": target, "current": current, "branches": branches}
