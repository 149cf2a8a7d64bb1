"""Serializers for git: credentials and the create-time clone spec (described here, validated by
apps.sandboxes.services.git), and the answers of /sandboxes/{id}/git/…, which render what
apps.sandboxes.services.git answers and describe it: one definition of each shape."""

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from vibebox.api.schema import OneOfField
from vibebox.api.serializers import StrictSerializer

PERSIST_HELP = "Keep the credentials (encrypted) for later pull and push on this path."


class GitTokenAuthSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["token"])
    token = serializers.CharField()
    username = serializers.CharField(required=False, help_text="Default x-access-token.")
    persist = serializers.BooleanField(required=False, default=False, help_text=PERSIST_HELP)


class GitSshAuthSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["ssh"])
    privateKey = serializers.CharField(help_text="An OpenSSH or PEM private key.")
    knownHosts = serializers.CharField(
        required=False, help_text="known_hosts lines; without them a new host key is accepted on first use."
    )
    persist = serializers.BooleanField(required=False, default=False, help_text=PERSIST_HELP)


class GitAuthField(OneOfField):
    """{type: "token", token, username?, persist?} or {type: "ssh", privateKey, knownHosts?, persist?};
    checked by apps.sandboxes.services.git.parse_auth."""

    options = (
        PolymorphicProxySerializer(
            component_name="GitAuth",
            serializers={"token": GitTokenAuthSerializer, "ssh": GitSshAuthSerializer},
            resource_type_field_name="type",
        ),
    )


class GitSpecSerializer(StrictSerializer):
    url = serializers.CharField()
    branch = serializers.CharField(required=False)
    path = serializers.CharField(required=False, help_text="Default /repo.")
    depth = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    auth = GitAuthField(required=False)
    failOnError = serializers.BooleanField(
        required=False, default=True, help_text="false: a failed clone leaves the sandbox created, with statusReason."
    )


class GitSpecField(OneOfField):
    """`git` at create: a repository URL or {url, branch, path, depth, auth, failOnError}; checked by
    apps.sandboxes.services.git.parse_spec."""

    options = ({"type": "string", "description": "A repository URL."}, GitSpecSerializer)


# ---- answers ----


class GitCloneResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    url = serializers.CharField(help_text="Without credentials.")
    branch = serializers.CharField()
    commit = serializers.CharField()


class GitPullResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    before = serializers.CharField(help_text="HEAD before the pull.")
    commit = serializers.CharField(help_text="HEAD after it.")
    updated = serializers.BooleanField()


class GitPushResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    remote = serializers.CharField()
    branch = serializers.CharField()
    commit = serializers.CharField()


class GitCommitResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    commit = serializers.CharField()
    message = serializers.CharField()


class GitCheckoutResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    branch = serializers.CharField()
    commit = serializers.CharField()


class GitFileStatusSerializer(serializers.Serializer):
    path = serializers.CharField()
    status = serializers.CharField(help_text="git's one-letter code: M, A, D, R, C, T.")


class GitStatusSerializer(serializers.Serializer):
    path = serializers.CharField()
    branch = serializers.CharField(allow_null=True, help_text="null before git knows it; (detached) when detached.")
    commit = serializers.CharField(allow_null=True, help_text="null before the first commit.")
    upstream = serializers.CharField(allow_null=True)
    ahead = serializers.IntegerField()
    behind = serializers.IntegerField()
    staged = GitFileStatusSerializer(many=True)
    unstaged = GitFileStatusSerializer(many=True)
    untracked = serializers.ListField(child=serializers.CharField())
    conflicted = serializers.ListField(child=serializers.CharField())
    clean = serializers.BooleanField()


class GitDiffFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    additions = serializers.IntegerField(allow_null=True, help_text="null for a binary file.")
    deletions = serializers.IntegerField(allow_null=True, help_text="null for a binary file.")
    binary = serializers.BooleanField()


class GitDiffSerializer(serializers.Serializer):
    path = serializers.CharField()
    staged = serializers.BooleanField()
    diff = serializers.CharField(help_text="Unified diff.")
    truncated = serializers.BooleanField()
    files = GitDiffFileSerializer(many=True)


class GitPersonSerializer(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.CharField()


class GitLogCommitSerializer(serializers.Serializer):
    sha = serializers.CharField()
    author = GitPersonSerializer()
    date = serializers.CharField(help_text="ISO 8601, with the author's offset.")
    message = serializers.CharField(help_text="The subject line.")


class GitLogSerializer(serializers.Serializer):
    path = serializers.CharField()
    commits = GitLogCommitSerializer(many=True, help_text="Newest first.")


class GitBranchSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Remote branches as origin/main.")
    commit = serializers.CharField()
    current = serializers.BooleanField()
    remote = serializers.BooleanField()
    upstream = serializers.CharField(allow_null=True)


class GitBranchesSerializer(serializers.Serializer):
    path = serializers.CharField()
    current = serializers.CharField(allow_null=True)
    branches = GitBranchSerializer(many=True)
