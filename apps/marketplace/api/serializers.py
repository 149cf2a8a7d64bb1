from rest_framework import serializers


class TemplateSerializer(serializers.Serializer):
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    displayName = serializers.CharField(source="display_name")
    description = serializers.CharField()
    version = serializers.IntegerField()
    image = serializers.CharField()
    language = serializers.CharField()
    languages = serializers.ListField(child=serializers.CharField())
    user = serializers.CharField()
    workdir = serializers.CharField()
    defaultEnv = serializers.DictField(source="default_env", child=serializers.CharField())
    ports = serializers.ListField(child=serializers.DictField())
    preInstalled = serializers.DictField(source="pre_installed")
    builtIn = serializers.BooleanField(source="built_in")
