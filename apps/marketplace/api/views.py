from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import TEMPLATES_READ, TEMPLATES_SUBMIT
from apps.marketplace import selectors, services
from apps.marketplace.models import SubmissionState
from vibebox import exceptions as errors
from vibebox.api.parsers import JSONParser
from vibebox.api.schema import error_responses

from .serializers import (
    CatalogueTemplateDetailSerializer,
    CatalogueTemplateSerializer,
    DeprecateSerializer,
    FeatureSerializer,
    ReviewSerializer,
    ReviewWriteSerializer,
    SubmissionCreateMultipartSerializer,
    SubmissionCreateSerializer,
    SubmissionDetailSerializer,
    SubmissionReviewSerializer,
    SubmissionSerializer,
    TemplateSerializer,
    TemplateVersionSerializer,
    YankSerializer,
)

READ = {"GET": [TEMPLATES_READ]}
READ_WRITE = {"GET": [TEMPLATES_READ], "POST": [TEMPLATES_SUBMIT]}
WRITE = {"POST": [TEMPLATES_SUBMIT]}
SUBMIT = "Needs the templates.submit permission (a key: the templates:submit scope)."


def _org(request):
    return actor_of(request).org


class TemplateListView(APIView):
    required_scopes = READ

    @extend_schema(
        operation_id="templates_list",
        responses=TemplateSerializer(many=True),
        description="Built-in templates and the published marketplace templates the caller's organization "
        "sees (public ones and its own private ones).",
    )
    def get(self, request):
        return Response(TemplateSerializer(selectors.template_list(_org(request)), many=True).data)


class TemplateDetailView(APIView):
    required_scopes = READ

    @extend_schema(operation_id="templates_retrieve", responses=TemplateSerializer)
    def get(self, request, name):
        return Response(TemplateSerializer(selectors.template_get(name=name, org=_org(request))).data)


# Submissions ---------------------------------------------------------------------------------


def _bad(field: str, message: str, code: str = "invalid"):
    return errors.ValidationFailed(
        f"{field}: {message}", details={"fields": {field: [{"message": message, "code": code}]}}
    )


def _text_part(data, name: str, limit: int) -> str:
    value = data.get(name)
    if value is None:
        raise _bad(name, "This field is required.", "required")
    if hasattr(value, "read"):
        raw = value.read(limit + 1)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            error = errors.InvalidDockerfile if name == "dockerfile" else errors.InvalidTemplateYaml
            problem = {"message": "Must be UTF-8 text.", "code": "not_utf8"}
            raise error(f"{name}: must be UTF-8 text.", details={"fields": {name: [problem]}}) from None
    return str(value)


def _multipart_input(request) -> dict:
    """The submission's parts from a multipart form (files or text fields)."""
    data = request.data
    unknown = sorted(set(data) - {"dockerfile", "templateYaml", "context", "visibility"})
    if unknown:
        raise errors.ValidationFailed(
            f"{unknown[0]}: Unknown field.",
            details={"fields": {n: [{"message": "Unknown field.", "code": "unknown_field"}] for n in unknown}},
        )
    context = data.get("context")
    if isinstance(context, str):
        context = context.encode() if context else None
    return {
        "dockerfile": _text_part(data, "dockerfile", settings.VIBEBOX_TEMPLATE_DOCKERFILE_MAX * 2),
        "template_yaml": _text_part(data, "templateYaml", 1024 * 1024),
        "context": context,
        "visibility": str(data.get("visibility") or "private"),
    }


class SubmissionListView(GenericAPIView):
    required_scopes = READ_WRITE
    parser_classes = [JSONParser, MultiPartParser]
    serializer_class = SubmissionSerializer

    @extend_schema(
        operation_id="marketplace_submissions_list",
        parameters=[
            OpenApiParameter("state", str, enum=SubmissionState.values, description="Only submissions in this state."),
            OpenApiParameter(
                "allOrgs",
                bool,
                description="Staff: every organization's submissions (e.g. with state=awaiting_review).",
            ),
        ],
        responses=SubmissionSerializer(many=True),
    )
    def get(self, request):
        state = request.query_params.get("state", "")
        if state and state not in SubmissionState.values:
            raise _bad("state", f"One of {', '.join(SubmissionState.values)}.", "invalid_choice")
        all_orgs = bool(_flag(request, "allOrgs"))
        rows = selectors.submission_list(actor=actor_of(request), state=state, all_orgs=all_orgs)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(SubmissionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="marketplace_submissions_create",
        request={
            "application/json": SubmissionCreateSerializer,
            "multipart/form-data": SubmissionCreateMultipartSerializer,
        },
        responses={202: SubmissionDetailSerializer, **error_responses(409)},
        description="Queues a template version for validation (build, policy checks, smoke test). The "
        "template.yaml, the Dockerfile and the context tar are checked at once: 400 "
        f"invalid_template_yaml / invalid_dockerfile / invalid_build_context / build_context_too_large. {SUBMIT}",
    )
    def post(self, request):
        actor = actor_of(request)
        if request.content_type.startswith("multipart/"):
            submission = services.submission_create(actor, **_multipart_input(request))
        else:
            body = SubmissionCreateSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            submission = services.submission_create_from(actor, data=body.validated_data)
        return Response(SubmissionDetailSerializer(submission).data, status=202)


class SubmissionDetailView(APIView):
    required_scopes = READ

    @extend_schema(
        operation_id="marketplace_submissions_retrieve",
        parameters=[
            OpenApiParameter(
                "logOffset", int, description="Only the build log after this byte offset (a previous logSize)."
            )
        ],
        responses=SubmissionDetailSerializer,
    )
    def get(self, request, submission_id):
        submission = selectors.submission_get(actor=actor_of(request), submission_id=submission_id)
        offset = request.query_params.get("logOffset")
        if offset is not None and not (offset.isascii() and offset.isdigit() and int(offset) < 2**62):
            raise _bad("logOffset", "A whole number of bytes.")
        context = {"log_offset": int(offset) if offset is not None else None}
        return Response(SubmissionDetailSerializer(submission, context=context).data)


class SubmissionReviewView(APIView):
    required_scopes = WRITE

    @extend_schema(
        operation_id="marketplace_submissions_review",
        request=SubmissionReviewSerializer,
        responses={200: SubmissionSerializer, **error_responses(409)},
        description="Approve (publish) or reject (with a reason) a submission awaiting review. Public "
        "submissions: staff only (403 naming marketplace.review).",
    )
    def post(self, request, submission_id):
        body = SubmissionReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        submission = services.submission_review(
            actor_of(request),
            submission_id,
            approve=body.validated_data["approve"],
            reason=body.validated_data.get("reason", ""),
        )
        return Response(SubmissionSerializer(submission).data)


class SubmissionCancelView(APIView):
    required_scopes = WRITE

    @extend_schema(
        operation_id="marketplace_submissions_cancel",
        request=None,
        responses={200: SubmissionSerializer, **error_responses(409)},
        description=f"Cancels a queued submission (409 submission_state_conflict once it started). {SUBMIT}",
    )
    def post(self, request, submission_id):
        return Response(SubmissionSerializer(services.submission_cancel(actor_of(request), submission_id)).data)


# The catalogue -------------------------------------------------------------------------------


def _flag(request, name: str):
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if value not in ("true", "false", "1", "0"):
        raise _bad(name, "true or false.")
    return value in ("true", "1")


class CatalogueListView(GenericAPIView):
    required_scopes = READ
    serializer_class = CatalogueTemplateSerializer

    @extend_schema(
        operation_id="marketplace_templates_list",
        parameters=[
            OpenApiParameter("q", str, description="Words to find in the name, description and tags."),
            OpenApiParameter("language", str),
            OpenApiParameter("tag", str),
            OpenApiParameter("featured", bool),
            OpenApiParameter("official", bool, description="true: built-in ones; false: community ones."),
            OpenApiParameter("sort", str, enum=list(selectors.SORTS), description="Default: featured first."),
        ],
        responses=CatalogueTemplateSerializer(many=True),
    )
    def get(self, request):
        params = request.query_params
        sort = params.get("sort") or "featured"
        if sort not in selectors.SORTS:
            raise _bad("sort", f"One of {', '.join(selectors.SORTS)}.", "invalid_choice")
        rows = selectors.catalogue(
            org=_org(request),
            q=params.get("q", "")[:200],
            language=params.get("language", "")[:32],
            tag=params.get("tag", "")[:32],
            featured=_flag(request, "featured"),
            official=_flag(request, "official"),
            sort=sort,
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CatalogueTemplateSerializer(page, many=True).data)


def _detail(template, org) -> Response:
    context = {"versions": selectors.template_versions(template, org=org)}
    return Response(CatalogueTemplateDetailSerializer(template, context=context).data)


class CatalogueDetailView(APIView):
    required_scopes = READ

    @extend_schema(operation_id="marketplace_templates_retrieve", responses=CatalogueTemplateDetailSerializer)
    def get(self, request, name):
        return _detail(selectors.catalogue_get(name=name, org=_org(request)), _org(request))


class ReviewListView(GenericAPIView):
    required_scopes = READ_WRITE
    serializer_class = ReviewSerializer

    @extend_schema(operation_id="marketplace_reviews_list", responses=ReviewSerializer(many=True))
    def get(self, request, name):
        template = selectors.template_get(name=name, org=_org(request))
        page = self.paginate_queryset(selectors.template_reviews(template))
        return self.get_paginated_response(ReviewSerializer(page, many=True).data)

    @extend_schema(
        operation_id="marketplace_reviews_upsert",
        request=ReviewWriteSerializer,
        responses={200: ReviewSerializer, 201: ReviewSerializer},
        description="Rates the template (1-5) with an optional text: one review per user, sent again it is "
        "edited (200). Only users who created a sandbox from the template may (403 review_not_allowed).",
    )
    def post(self, request, name):
        actor = actor_of(request)
        template = selectors.template_get(name=name, org=actor.org)
        body = ReviewWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review, created = services.review_upsert(actor, template=template, **body.validated_data)
        return Response(ReviewSerializer(review).data, status=201 if created else 200)


class VersionYankView(APIView):
    required_scopes = WRITE

    @extend_schema(
        operation_id="marketplace_versions_yank",
        request=YankSerializer,
        responses=TemplateVersionSerializer,
        description="Hides a version from new creates (running sandboxes keep it). The template's organization's "
        "admins (templates.submit + members.manage) or staff.",
    )
    def post(self, request, name, version):
        actor = actor_of(request)
        template = selectors.template_get(name=name, org=actor.org)
        body = YankSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = services.version_yank(actor, template=template, version=version, reason=body.validated_data["reason"])
        return Response(TemplateVersionSerializer(row).data)


class DeprecateView(APIView):
    required_scopes = WRITE

    @extend_schema(
        operation_id="marketplace_templates_deprecate",
        request=DeprecateSerializer,
        responses=CatalogueTemplateDetailSerializer,
        description="Sets or clears (empty message) a deprecation notice with a suggested replacement.",
    )
    def post(self, request, name):
        actor = actor_of(request)
        template = selectors.template_get(name=name, org=actor.org)
        body = DeprecateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        template = services.template_deprecate(actor, template=template, **body.validated_data)
        return _detail(selectors.catalogue_get(name=template.name, org=actor.org), actor.org)


class FeatureView(APIView):
    required_scopes = WRITE

    @extend_schema(
        operation_id="marketplace_templates_feature",
        request=FeatureSerializer,
        responses=CatalogueTemplateDetailSerializer,
        description="Staff: features a template in the catalogue (a lower rank first).",
    )
    def post(self, request, name):
        actor = actor_of(request)
        template = selectors.template_get(name=name, org=actor.org)
        body = FeatureSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        template = services.template_feature(actor, template=template, **body.validated_data)
        return _detail(selectors.catalogue_get(name=template.name, org=actor.org), actor.org)
