from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import selectors
from apps.sandboxes.services import git
from vibebox.api.schema import error_responses

from . import access, git_schema
from .serializers import (
    GitCheckoutSerializer,
    GitCloneSerializer,
    GitCommitSerializer,
    GitPullSerializer,
    GitPushSerializer,
)

SCOPES = {"GET": [SANDBOXES_READ], "POST": [SANDBOXES_WRITE]}


def _flag(value) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _post_view(name: str, serializer_class, call, result):
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(result(call(sandbox, body.validated_data, request)).data)

    post = extend_schema(
        operation_id=f"sandboxes_git_{name}",
        request=serializer_class,
        responses={200: result, **error_responses(409, 422)},
    )(post)
    return type(f"Git{name.title()}View", (APIView,), {"required_scopes": SCOPES, "post": post}).as_view()


def _get_view(name: str, call, result, parameters=()):
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        access.read_guard(request, sandbox)  # a read-only key never resumes a paused sandbox
        return Response(result(call(sandbox, request.query_params)).data)

    get = extend_schema(
        operation_id=f"sandboxes_git_{name}",
        parameters=[OpenApiParameter("path", description="Repository path (default /repo)"), *parameters],
        responses={200: result, **error_responses(400, 409, 422)},
    )(get)
    return type(f"Git{name.title()}View", (APIView,), {"required_scopes": SCOPES, "get": get}).as_view()


def _user(request):
    return request.user if request.user and request.user.is_authenticated else None


views = {
    "clone": _post_view(
        "clone",
        GitCloneSerializer,
        lambda s, d, r: git.git_clone(
            sandbox=s,
            url=d["url"],
            branch=d.get("branch"),
            path=d.get("path"),
            depth=d.get("depth"),
            auth=d.get("auth"),
        ),
        git_schema.GitCloneResultSerializer,
    ),
    "pull": _post_view(
        "pull",
        GitPullSerializer,
        lambda s, d, r: git.git_pull(
            sandbox=s,
            path=d.get("path"),
            remote=d["remote"],
            branch=d.get("branch"),
            auth=d.get("auth"),
            user=_user(r),  # a merge commit's author when the repository names none, as for commit
        ),
        git_schema.GitPullResultSerializer,
    ),
    "push": _post_view(
        "push",
        GitPushSerializer,
        lambda s, d, r: git.git_push(
            sandbox=s,
            path=d.get("path"),
            remote=d["remote"],
            branch=d.get("branch"),
            auth=d.get("auth"),
            set_upstream=d["setUpstream"],
            force=d["force"],
        ),
        git_schema.GitPushResultSerializer,
    ),
    "commit": _post_view(
        "commit",
        GitCommitSerializer,
        lambda s, d, r: git.git_commit(
            sandbox=s,
            message=d["message"],
            path=d.get("path"),
            all=d["all"],
            author=d.get("author"),
            allow_empty=d["allowEmpty"],
            user=_user(r),
        ),
        git_schema.GitCommitResultSerializer,
    ),
    "checkout": _post_view(
        "checkout",
        GitCheckoutSerializer,
        lambda s, d, r: git.git_checkout(sandbox=s, branch=d["branch"], path=d.get("path"), create=d["create"]),
        git_schema.GitCheckoutResultSerializer,
    ),
    "status": _get_view(
        "status", lambda s, q: git.git_status(sandbox=s, path=q.get("path")), git_schema.GitStatusSerializer
    ),
    "diff": _get_view(
        "diff",
        lambda s, q: git.git_diff(sandbox=s, path=q.get("path"), staged=_flag(q.get("staged")), file=q.get("file")),
        git_schema.GitDiffSerializer,
        [
            OpenApiParameter("staged", bool, description="The staged changes (git diff --cached)."),
            OpenApiParameter("file", description="Limit to one path."),
        ],
    ),
    "log": _get_view(
        "log",
        lambda s, q: git.git_log(sandbox=s, path=q.get("path"), limit=q.get("limit") or 20),
        git_schema.GitLogSerializer,
        [OpenApiParameter("limit", int, description="How many commits (default 20, at most 500).")],
    ),
    "branches": _get_view(
        "branches", lambda s, q: git.git_branches(sandbox=s, path=q.get("path")), git_schema.GitBranchesSerializer
    ),
}
