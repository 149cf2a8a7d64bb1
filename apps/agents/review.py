"""Review of Claude's changes: a git worktree per session, change sets, approve and reject.

Claude works on `claude/<session>` in a worktree under the sandbox user's home, started from
a commit of /workspace as it is (tracked and untracked files, ignored ones left out; VibeBox
makes /workspace a repository with a baseline commit first when it is not one, and keeps its
own `.vibebox/` out of git). After each ask its changes are committed on that branch. Approve
merges them into /workspace's working tree (a three-way merge against /workspace's current
state, so unrelated edits made meanwhile are kept; HEAD and the index are not touched);
conflicting edits give 409 merge_conflict and change nothing. Reject resets the branch.

Every git command runs in the sandbox as its user, by the scripts below, through
apps.sandboxes.services.git.run_git_script: `git` there is the function that starts git unable to start
any process (a filter, merge driver, textconv, hook... of the repository's: a diff of the
changes is a `sandboxes:read` GET), /bin/sh and the system's PATH, no global config. Only
`git worktree add` starts children (`command git`, with --no-checkout: they write refs, never
files; the checkout is a limited `git reset --hard`).
"""

import re

from django.conf import settings

from apps.sandboxes.services.git import run_git_script
from vibebox import exceptions as errors

COMMON = r"""
set -eu
export GIT_AUTHOR_NAME=VibeBox GIT_AUTHOR_EMAIL=vibebox@localhost
export GIT_COMMITTER_NAME=VibeBox GIT_COMMITTER_EMAIL=vibebox@localhost
export GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
ensure_repo() {  # $1: the workspace
    cd "$1"
    if [ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$1" ]; then git init -q -b main; fi
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.vibebox/' "$exclude" 2>/dev/null || echo '/.vibebox/' >> "$exclude"
    if ! git rev-parse -q --verify HEAD >/dev/null; then
        git add -A && git commit -q --allow-empty --no-verify -m "VibeBox baseline"
    fi
}
snapshot() {  # a commit of the workspace as it is now; its index and HEAD are left alone
    index=$(mktemp)
    real=$(git rev-parse --git-path index)
    if [ -f "$real" ]; then cp "$real" "$index"; else rm -f "$index"; fi
    GIT_INDEX_FILE="$index" git add -A
    tree=$(GIT_INDEX_FILE="$index" git write-tree)
    rm -f "$index"
    if [ "$tree" = "$(git rev-parse 'HEAD^{tree}')" ]; then git rev-parse HEAD
    else git commit-tree "$tree" -p HEAD -m "VibeBox: /workspace as Claude found it"; fi
}
"""

PREPARE = (
    COMMON
    + r"""
ws=$1 wt=$2 branch=$3 refresh=$4
ensure_repo "$ws"
git worktree prune
if [ -e "$wt/.git" ]; then
    if [ "$refresh" = 1 ]; then
        start=$(snapshot)
        cd "$wt"
        git reset -q --hard && git clean -fdq && git checkout -q -B "$branch" "$start"
    fi
else
    start=$(snapshot)
    mkdir -p "$(dirname "$wt")"
    command git worktree add -q -f --no-checkout -B "$branch" "$wt" "$start"
    git -C "$wt" reset -q --hard
fi
git -C "$wt" rev-parse HEAD
"""
)

COMMIT = (
    COMMON
    + r"""
cd "$1"
git add -A
git diff --cached --quiet || git commit -q --no-verify -m "$2"
git rev-parse HEAD
"""
)

STAT = (
    COMMON
    + r"""cd "$1"; git diff --no-ext-diff --no-textconv --no-renames --numstat "$2" "$3"; echo '--'
git diff --no-ext-diff --no-renames --name-status "$2" "$3"
"""
)

DIFF = (
    COMMON
    + r"""cd "$1"; git diff --no-color --no-ext-diff --no-textconv --no-renames "$2" "$3"
"""
)

APPROVE = (
    COMMON
    + r"""
ws=$1 base=$2 head=$3
ensure_repo "$ws"
current=$(snapshot)
status=0
out=$(git merge-tree --write-tree --merge-base="$base" "$current" "$head") || status=$?
if [ "$status" = 1 ]; then echo "$out"; exit 3; fi
[ "$status" = 0 ] || exit "$status"
merged=$(echo "$out" | head -n 1)
git diff --binary --no-ext-diff --no-textconv "$current" "$merged" | git apply --whitespace=nowarn --allow-empty
"""
)

REJECT = (
    COMMON
    + r"""cd "$1"; git reset -q --hard "$2"; git clean -fdq
"""
)

SHA = re.compile(r"^[0-9a-f]{40,64}$")


def _run(sandbox, script: str, *args: str, timeout: float | None = None, output_limit: int = 1024**2):
    return run_git_script(sandbox, script, list(args), path=None, timeout=timeout or settings.VIBEBOX_GIT_TIMEOUT,
                          output_limit=output_limit)  # fmt: skip


def _sha(sandbox, script: str, *args: str) -> str:
    result = _run(sandbox, script, *args)
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if result.exit_code != 0 or not lines or not SHA.match(lines[-1]):
        raise errors.GitFailed(
            "A git step of Claude's review failed.",
            details={"exitCode": result.exit_code, "stderr": result.stderr.decode(errors="replace")[-2000:]},
        )
    return lines[-1]


def worktree_path(home: str, session_id: str) -> str:
    return f"{home.rstrip('/')}/.vibebox/worktrees/{session_id}"


def prepare(sandbox, *, workspace: str, worktree: str, branch: str, refresh: bool) -> str:
    """Makes (or, with `refresh`, resets to /workspace's current state) the session's worktree;
    answers the commit the next ask starts from."""
    return _sha(sandbox, PREPARE, workspace, worktree, branch, "1" if refresh else "0")


def commit(sandbox, *, worktree: str, message: str) -> str:
    return _sha(sandbox, COMMIT, worktree, message)


def files_changed(sandbox, *, worktree: str, base: str, head: str) -> list[dict]:
    result = _run(sandbox, STAT, worktree, base, head)
    if result.exit_code != 0:
        raise errors.GitFailed(details={"stderr": result.stderr.decode(errors="replace")[-2000:]})
    numstat, _, names = result.stdout.decode(errors="replace").partition("--\n")
    kinds = {"A": "added", "M": "modified", "D": "deleted", "T": "modified"}
    status = {}
    for line in names.splitlines():
        code, _, path = line.partition("\t")
        status[path] = kinds.get(code[:1], "modified")
    files = []
    for line in numstat.splitlines():
        added, deleted, path = [*line.split("\t", 2), "", ""][:3]
        binary = added == "-"
        files.append(
            {
                "path": path,
                "status": status.get(path, "modified"),
                "additions": 0 if binary else int(added),
                "deletions": 0 if binary else int(deleted),
                "binary": binary,
            }
        )
    return files


def diff(sandbox, *, worktree: str, base: str, head: str) -> tuple[str, bool]:
    """The unified diff (text), cut at VIBEBOX_CLAUDE_DIFF_LIMIT: (diff, truncated)."""
    limit = settings.VIBEBOX_CLAUDE_DIFF_LIMIT
    result = _run(sandbox, DIFF, worktree, base, head, timeout=60, output_limit=limit + 1)
    if result.exit_code != 0:
        raise errors.GitFailed(details={"stderr": result.stderr.decode(errors="replace")[-2000:]})
    data = result.stdout
    truncated = result.truncated or len(data) > limit
    return data[:limit].decode(errors="replace"), truncated


def approve(sandbox, *, workspace: str, base: str, head: str) -> None:
    result = _run(sandbox, APPROVE, workspace, base, head)
    if result.exit_code == 3:
        lines = result.stdout.decode(errors="replace").splitlines()[1:]
        conflicts = [line for line in lines if line.startswith("CONFLICT")]
        files = sorted({line.split("\t")[-1] for line in lines if "\t" in line})
        raise errors.MergeConflict(
            "The changes conflict with edits made in /workspace since; nothing was applied.",
            details={"files": files, "conflicts": conflicts[:50]},
        )
    if result.exit_code != 0:
        raise errors.GitFailed(
            "Applying the changes to /workspace failed; nothing was applied.",
            details={"stderr": result.stderr.decode(errors="replace")[-2000:]},
        )


def reject(sandbox, *, worktree: str, to: str) -> None:
    result = _run(sandbox, REJECT, worktree, to)
    if result.exit_code != 0:
        raise errors.GitFailed(details={"stderr": result.stderr.decode(errors="replace")[-2000:]})
