"""Git inside sandboxes: clone, pull, push, commit, checkout, status, diff, log, branches.

Every git command is an argument list run in the sandbox as its user; user input is never
pasted into a shell string. Credentials live only for one command: an HTTPS token reaches
git through a credential helper reading environment variables, an SSH key through a file
in a private temporary directory removed when the command ends (or by the timeout killer).
Neither is written to .git/config. Kept credentials (`auth.persist`) are stored encrypted.
"""

import json
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from vibebox import exceptions as errors

from . import envvars
from .execution import require_running
from .models import Sandbox, SandboxGitConfig, new_execution_id
from .runtime import ExecRequest, ExecResult, get_driver

DEFAULT_PATH = "/repo"
_SCP_URL = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)[^\s]+$")
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/@+-]{1,200}$")
_SCHEMES = {"https", "http", "ssh", "git"}
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; echo "username=$VBX_GIT_USERNAME"; echo "password=$VBX_GIT_TOKEN"; }; f'
)
SSH_WRAPPER = """umask 077
d=/tmp/vbx-$VIBEBOX_EXEC_ID.ssh
mkdir -p "$d" && cat > "$d/key" && printf '%s\\n' "$VBX_KNOWN_HOSTS" > "$d/known_hosts" || exit 128
o="-o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$d/known_hosts"
export GIT_SSH_COMMAND="ssh -i $d/key $o -o StrictHostKeyChecking=$VBX_STRICT_HOSTS"
"$@"
rc=$?
rm -rf "$d"
exit $rc
"""
AUTHOR_WRAPPER = """n="$VBX_NAME"
[ -n "$(git config user.name)" ] || export GIT_AUTHOR_NAME="$n" GIT_COMMITTER_NAME="$n"
[ -n "$(git config user.email)" ] || export GIT_AUTHOR_EMAIL="$VBX_EMAIL" GIT_COMMITTER_EMAIL="$VBX_EMAIL"
exec "$@"
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
    return envvars.redact(text, auth.secrets() if auth else [])[-2000:]


def run_git(
    sandbox: Sandbox,
    args: list[str],
    *,
    path: str | None,
    auth: GitAuth | None = None,
    author: dict | None = None,
    timeout: float | None = None,
    output_limit: int = 4 * 1024 * 1024,
) -> ExecResult:
    workdir = path or "/"
    argv = ["git", "-c", "credential.helper=", "-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"]
    if path:
        argv += ["-c", f"safe.directory={path}"]
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"}
    stdin = None
    if auth and auth.type == "token":
        argv += ["-c", f"credential.helper={CREDENTIAL_HELPER}"]
        env |= {"VBX_GIT_TOKEN": auth.token, "VBX_GIT_USERNAME": auth.username or "x-access-token"}
    argv += args
    if author is not None:
        env |= {"VBX_NAME": author["name"], "VBX_EMAIL": author["email"]}
        argv = ["sh", "-c", AUTHOR_WRAPPER, "sh", *argv]
    if auth and auth.type == "ssh":
        env |= {"VBX_KNOWN_HOSTS": auth.known_hosts, "VBX_STRICT_HOSTS": "yes" if auth.known_hosts else "accept-new"}
        argv = ["sh", "-c", SSH_WRAPPER, "sh", *argv]
        stdin = auth.private_key.encode()
    return get_driver().exec(
        sandbox.container_name,
        ExecRequest(
            argv=tuple(argv),
            exec_id=new_execution_id(),
            env=envvars.command_env(sandbox, env),
            user=sandbox.template.user,
            workdir=workdir,
            stdin=stdin,
            timeout=timeout or settings.VIBEBOX_GIT_TIMEOUT,
            output_limit=output_limit,
        ),
    )


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
        raise failure(message, details={"git": message})
    return result.stdout.decode(errors="replace")


def _git(sandbox, args, *, path, auth=None, author=None, failure=errors.GitFailed) -> str:
    return _check(run_git(sandbox, args, path=path, auth=auth, author=author), auth, failure)


def _stored_auth(sandbox: Sandbox, path: str) -> GitAuth | None:
    config = SandboxGitConfig.objects.filter(sandbox=sandbox, path=path).first()
    if config is None or not config.auth:
        return None
    return GitAuth(**json.loads(envvars.decrypt(config.auth)))


def _head(sandbox: Sandbox, path: str) -> str:
    return _git(sandbox, ["rev-parse", "HEAD"], path=path).strip()


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
    args = ["clone", "--no-hardlinks"]
    if branch:
        args += ["--branch", check_ref(branch)]
    if depth:
        args += ["--depth", str(int(depth))]
    _git(sandbox, [*args, "--", clean, target], path=None, auth=credentials, failure=errors.GitCloneFailed)
    current = _git(sandbox, ["rev-parse", "--abbrev-ref", "HEAD"], path=target).strip()
    SandboxGitConfig.objects.update_or_create(
        sandbox=sandbox,
        path=target,
        defaults={
            "repo_url": clean,
            "branch": branch or current,
            "auth": envvars.encrypt(credentials.to_json()) if credentials and credentials.persist else "",
            "cloned_at": timezone.now(),
        },
    )
    return {"path": target, "url": clean, "branch": current, "commit": _head(sandbox, target)}


def _auth_for(sandbox, path, auth):
    return parse_auth(auth) if auth is not None else _stored_auth(sandbox, path)


def git_pull(*, sandbox: Sandbox, path=None, remote: str = "origin", branch=None, auth=None) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    credentials = _auth_for(sandbox, target, auth)
    before = _head(sandbox, target)
    args = ["-c", "pull.rebase=false", "pull", "--no-edit", "--", check_ref(remote, "remote")]
    if branch:
        args.append(check_ref(branch))
    _git(sandbox, args, path=target, auth=credentials)
    after = _head(sandbox, target)
    return {"path": target, "before": before, "commit": after, "updated": before != after}


def git_push(
    *, sandbox: Sandbox, path=None, remote: str = "origin", branch=None, auth=None, set_upstream=False, force=False
) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    credentials = _auth_for(sandbox, target, auth)
    branch = check_ref(branch) if branch else _git(sandbox, ["rev-parse", "--abbrev-ref", "HEAD"], path=target).strip()
    args = ["push", "--porcelain"]
    if set_upstream:
        args.append("--set-upstream")
    if force:
        args.append("--force-with-lease")
    _git(
        sandbox, [*args, "--", check_ref(remote, "remote"), f"HEAD:refs/heads/{branch}"], path=target, auth=credentials
    )
    return {"path": target, "remote": remote, "branch": branch, "commit": _head(sandbox, target)}


def default_author(user) -> dict:
    name = settings.VIBEBOX_GIT_AUTHOR_NAME or (user.get_full_name() if user else "") or (user.username if user else "")
    email = settings.VIBEBOX_GIT_AUTHOR_EMAIL or (user.email if user else "") or f"{name or 'vibebox'}@vibebox.local"
    return {"name": name or "VibeBox", "email": email}


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
    return {"path": target, "commit": _head(sandbox, target), "message": message}


def git_checkout(*, sandbox: Sandbox, branch: str, path=None, create: bool = False) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    args = ["checkout", "-b", check_ref(branch)] if create else ["checkout", check_ref(branch), "--"]
    _git(sandbox, args, path=target)
    return {"path": target, "branch": branch, "commit": _head(sandbox, target)}


def git_status(*, sandbox: Sandbox, path=None) -> dict:
    require_running(sandbox)
    target = repo_path(path)
    raw = _git(sandbox, ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"], path=target)
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
    base = ["diff", "--no-color", "--no-ext-diff"] + (["--cached"] if staged else [])
    limit = ["--", file] if file else []
    if file is not None and ("\0" in file or file.startswith("-")):
        raise errors.InvalidPath()
    text_result = run_git(sandbox, [*base, *limit], path=target, output_limit=settings.VIBEBOX_GIT_DIFF_LIMIT)
    text = _check(text_result, None)
    numstat = _git(sandbox, [*base, "--numstat", "-z", *limit], path=target)
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
