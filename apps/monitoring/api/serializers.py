"""The status answers' shapes (rendering and the OpenAPI document: one definition of each)."""

from rest_framework import serializers

STATUSES = ["ok", "degraded", "down"]
COMPONENTS = ["api", "engine", "redis", "workers", "gateway", "pools"]


class ComponentHealthSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=COMPONENTS)
    status = serializers.ChoiceField(choices=STATUSES)
    message = serializers.CharField(help_text="A short fixed text: no addresses or error details.")


class PlatformStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=STATUSES, help_text="down when the api, engine or redis is down; degraded when any component is not ok."
    )
    components = ComponentHealthSerializer(many=True)
    checkedAt = serializers.DateTimeField(help_text="When the checks ran (kept a few seconds per server process).")


class SloBurnRatesSerializer(serializers.Serializer):
    # Keys are window names; DRF field names cannot start with a digit, so each is declared by source.
    def get_fields(self):
        return {
            label: serializers.FloatField(
                allow_null=True,
                help_text=f"Error ratio over the last {label} divided by the error budget (1 - objective); "
                "null without events.",
            )
            for label in ("1h", "6h", "1d", "3d")
        }


class SloEventsSerializer(serializers.Serializer):
    good = serializers.IntegerField()
    total = serializers.IntegerField()


class SloSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The SLO's stable id (settings.VIBEBOX_SLOS).")
    description = serializers.CharField()
    objective = serializers.FloatField(help_text="The fraction of good events promised (0.999 is 99.9 %).")
    window = serializers.CharField(help_text='The SLO window, e.g. "30d".')
    sli = serializers.FloatField(
        allow_null=True, help_text="Good events / all events over the window; null without events."
    )
    errorBudgetRemaining = serializers.FloatField(
        help_text="1 - (1 - sli) / (1 - objective): 1 untouched, 0 spent, below 0 overspent."
    )
    burnRates = SloBurnRatesSerializer()
    events = SloEventsSerializer()
    query = serializers.CharField(help_text="The SLI in PromQL, over the same metrics.")


class SloReportSerializer(serializers.Serializer):
    slos = SloSerializer(many=True)
    computedAt = serializers.DateTimeField()
