"""Auto-pull webhooks (docs/api.md "Auto-pull webhooks"):
GET/POST /sandboxes/{id}/git/hooks, DELETE /sandboxes/{id}/git/hooks/{hookId} for the sandbox's
users, and POST /git-hooks/{hookId}, which the git host calls (no API key: the signature is the
authentication; its body capped by vibebox/bodylimit.py, its rate counted per hook)."""

import time
import uuid

import redis
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from apps.keys import throttles
from apps.keys.actors import actor_of
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import selectors
from apps.sandboxes.models import GitHook, GitHookDelivery
from apps.sandboxes.services import git_hooks
from vibebox import exceptions as errors
from vibebox import redisdb
from vibebox.api.schema import error_responses
from vibebox.api.serializers import StrictSerializer

SCOPES = {"GET": [SANDBOXES_READ], "POST": [SANDBOXES_WRITE], "DELETE": [SANDBOXES_WRITE]}


class GitHookCreateSerializer(StrictSerializer):
    path = serializers.CharField(required=False, help_text="Repository path (default /repo).")
    branch = serializers.CharField(
        required=False, help_text="The branch whose pushes are pulled (default: the branch it was cloned at)."
    )
    provider = serializers.ChoiceField(
        choices=GitHook.Provider.values,
        required=False,
        default=GitHook.Provider.AUTO,
        help_text="github, gitlab, gitea, or auto (told by each request's headers).",
    )


class GitHookDeliverySerializer(serializers.Serializer):
    deliveryId = serializers.CharField(source="delivery_id")
    provider = serializers.CharField()
    status = serializers.ChoiceField(choices=GitHookDelivery.Status.choices)
    after = serializers.CharField(help_text="The pushed commit, as the payload said.")
    commit = serializers.CharField(help_text="The repository's HEAD after the pull (pulled only).")
    detail = serializers.CharField(help_text="Why it was not pulled (conflict, skipped, failed).")
    receivedAt = serializers.DateTimeField(source="received_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


class GitHookSerializer(serializers.Serializer):
    id = serializers.CharField()
    sandboxId = serializers.CharField(source="sandbox_id")
    path = serializers.CharField()
    branch = serializers.CharField()
    provider = serializers.ChoiceField(choices=GitHook.Provider.choices)
    url = serializers.SerializerMethodField(help_text="Where the git host posts its push webhook.")
    createdAt = serializers.DateTimeField(source="created_at")
    lastDeliveryAt = serializers.DateTimeField(source="last_delivery_at", allow_null=True)
    deliveries = serializers.SerializerMethodField(help_text="The last 10 accepted deliveries, newest first.")

    def get_url(self, hook) -> str:
        request = self.context.get("request")
        origin = settings.VIBEBOX_PUBLIC_URL or (request.build_absolute_uri("/").rstrip("/") if request else "")
        return f"{origin}/api/v1/git-hooks/{hook.pk}"

    @extend_schema_field(GitHookDeliverySerializer(many=True))
    def get_deliveries(self, hook) -> list[dict]:
        return GitHookDeliverySerializer(selectors.git_hook_deliveries(hook=hook), many=True).data


class GitHookCreatedSerializer(GitHookSerializer):
    secret = serializers.CharField(help_text="Shown this once: the webhook's secret (or GitLab's secret token).")


class GitHookListView(APIView):
    required_scopes = SCOPES

    @extend_schema(
        operation_id="sandboxes_git_hooks_list",
        responses={200: GitHookSerializer(many=True), **error_responses(404)},
        description="The sandbox's auto-pull webhooks, oldest first, each with its last deliveries.",
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        hooks = selectors.git_hook_list(sandbox=sandbox)
        return Response(GitHookSerializer(hooks, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="sandboxes_git_hooks_create",
        request=GitHookCreateSerializer,
        responses={201: GitHookCreatedSerializer, **error_responses(400, 404)},
        description="Creates an auto-pull webhook: give its `url` and `secret` to GitHub, GitLab or Gitea as a "
        "push webhook (content type JSON). A push to `branch` then pulls it into `path`, fast-forward only. "
        "The secret is shown this once. Needs what managing the sandbox needs.",
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        body = GitHookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        hook, secret = git_hooks.git_hook_create(
            sandbox=sandbox, path=data.get("path"), branch=data.get("branch"), provider=data["provider"],
            user=request.user,
        )  # fmt: skip
        hook.secret = secret  # the answer shows the secret, not its stored form
        return Response(GitHookCreatedSerializer(hook, context={"request": request}).data, status=201)


class GitHookDetailView(APIView):
    required_scopes = SCOPES

    @extend_schema(
        operation_id="sandboxes_git_hooks_destroy",
        responses={204: None, **error_responses(404)},
        description="Deletes an auto-pull webhook: its URL answers 404 git_hook_not_found from then on.",
    )
    def delete(self, request, sandbox_id, hook_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        git_hooks.git_hook_delete(hook=selectors.git_hook_get(sandbox=sandbox, hook_id=hook_id))
        return Response(status=204)


class _RawParser(BaseParser):
    """The body is read as bytes (request.body): the signature covers exactly those."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class GitHookThrottle(BaseThrottle):
    """VIBEBOX_GIT_HOOK_RATE per hook id (known or not), counted in Redis like the API's per-key
    rate (apps/keys/throttles.py); Redis down: refused with 503, as every write is. Taken only
    by authentic deliveries (git_hook_receive's `admit`)."""

    def __init__(self):
        self.wait_seconds = None

    def allow_request(self, request, view):
        count, duration = SimpleRateThrottle.parse_rate(None, settings.VIBEBOX_GIT_HOOK_RATE)
        ident = "githook-" + str(view.kwargs.get("hook_id", ""))[:40]
        now = time.time()
        try:
            taken, oldest = redisdb.script(settings.REDIS_URL, throttles._TAKE)(
                keys=[throttles._key(ident)],
                args=[now, now - duration, count, uuid.uuid4().hex, int(duration * 1000) + 1000],
            )
        except redis.RedisError:
            raise errors.RateLimiterUnavailable(
                details={"dependency": "redis"}, headers={"Retry-After": str(throttles.RETRY_AFTER_UNAVAILABLE)}
            ) from None
        if taken:
            return True
        self.wait_seconds = max(0.0, float(oldest) + duration - now)
        return False

    def wait(self):
        return self.wait_seconds


class GitHookReceiveSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["queued", "duplicate", "ignored", "pong"])
    deliveryId = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)


class GitHookReceiveView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # GitHookThrottle, once the signature holds (post)
    parser_classes = [_RawParser]

    @extend_schema(
        operation_id="git_hooks_receive",
        auth=[],
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("X-Hub-Signature-256", str, OpenApiParameter.HEADER, description="GitHub"),
            OpenApiParameter("X-Gitea-Signature", str, OpenApiParameter.HEADER, description="Gitea"),
            OpenApiParameter("X-Gitlab-Token", str, OpenApiParameter.HEADER, description="GitLab"),
        ],
        responses={200: GitHookReceiveSerializer, 202: GitHookReceiveSerializer, **error_responses(400, 401, 404)},
        description="Where a git host posts push events (no API key: the provider's signature or token is the "
        "authentication). 202 `queued`: the pull runs in the background; 200 `ignored` (another branch, another "
        "event), `duplicate` (a delivery id or body seen before) or `pong` (GitHub's ping). 401 "
        "git_hook_signature_invalid when the signature or token does not match.",
    )
    def post(self, request, hook_id):
        def admit():
            throttle = GitHookThrottle()
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())

        status, answer = git_hooks.git_hook_receive(
            hook_id=hook_id,
            headers=request.headers,
            body=request.body,
            content_type=request.content_type or "",
            admit=admit,
        )
        return Response(answer, status=status)
