"""GET /api/v1/billing/quotas: the caller's organization's quotas, each with its limit, what is
used and the share (docs/billing.md, "Quotas and budgets"). Needs billing.read (a key:
billing:read). The limits are changed by staff only, in the admin (OrgBilling's overrides): no
endpoint changes them."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import BILLING_READ

from .. import quotas

AMOUNT_HELP = "An integer (counts, bytes), a number (vCPUs, minutes) or money as a string with cents."


class QuotaSerializer(serializers.Serializer):
    quota = serializers.ChoiceField(choices=list(quotas.Limits.LIMIT_FIELDS))
    limit = serializers.JSONField(allow_null=True, help_text=f"null: no limit. {AMOUNT_HELP}")
    used = serializers.JSONField(help_text=f"Now, or this month so far for a monthly quota. {AMOUNT_HELP}")
    percent = serializers.FloatField(allow_null=True, help_text="used / limit * 100 (null: no limit).")
    period = serializers.CharField(allow_null=True, help_text="A monthly quota's month (YYYY-MM, UTC); else null.")
    overridden = serializers.BooleanField(help_text="The limit is set by staff for the organization, not its plan's.")


class NoticeSerializer(serializers.Serializer):
    org = serializers.CharField()
    quota = serializers.CharField()
    percent = serializers.IntegerField()
    used = serializers.JSONField()
    limit = serializers.JSONField()
    period = serializers.CharField()
    reachedAt = serializers.DateTimeField()


class QuotasSerializer(serializers.Serializer):
    plan = serializers.CharField(allow_null=True)
    paymentState = serializers.ChoiceField(choices=["ok", "past_due", "frozen"])
    budgetPausedAt = serializers.DateTimeField(
        allow_null=True, help_text="When the used-up budget paused the running sandboxes (null: it did not)."
    )
    quotas = QuotaSerializer(many=True)
    notices = NoticeSerializer(many=True, help_text="Thresholds reached this month (80 %, 100 %), oldest first.")


class QuotasView(APIView):
    required_scopes = {"GET": [BILLING_READ]}

    @extend_schema(
        operation_id="billing_quotas",
        responses={200: QuotasSerializer},
        description="The organization's quotas (its plan's, or its own where staff set one): limit, used, percent; "
        "the thresholds reached this month; the payment state. Needs billing.read.",
    )
    def get(self, request):
        actor = actor_of(request)
        actor.require("billing.read")
        return Response(QuotasSerializer(quotas.overview(actor.org)).data)
