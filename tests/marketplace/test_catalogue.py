"""The catalogue and its rules: visibility across organizations (404, no leak in suggestions),
version pinning and yank on create (real sandboxes from a real image), reviews only by users who
used a template, usage counts, search/filter/sort, yank/deprecate/feature permissions."""

import pytest

from apps.audit.models import AuditEntry
from apps.marketplace import services
from apps.marketplace.models import Review, Template, TemplateUse
from apps.orgs.actors import actor_in
from apps.orgs.services import member_add, org_create, personal_org_ensure

from .conftest import DOCKERFILE, pipeline_to_passed, yaml_for

pytestmark = pytest.mark.django_db(transaction=True)
CAT = "/api/v1/marketplace/templates"


def _code(response):
    return response.json()["error"]["code"]


def test_a_private_template_is_invisible_to_other_orgs(api_client, outsider_client, owner, publish, templates):
    publish(owner, "secret-tool", description="hush")
    assert api_client.get("/api/v1/templates/secret-tool").status_code == 200
    assert "secret-tool" in [t["name"] for t in api_client.get("/api/v1/templates").json()]
    assert api_client.get(f"{CAT}/secret-tool").json()["visibility"] == "private"

    assert "secret-tool" not in [t["name"] for t in outsider_client.get("/api/v1/templates").json()]
    for url in ("/api/v1/templates/secret-tool", f"{CAT}/secret-tool", f"{CAT}/secret-tool/reviews"):
        response = outsider_client.get(url)
        assert response.status_code == 404 and _code(response) == "template_not_found"
        assert response.json()["error"]["details"] == {"template": "secret-tool", "suggestions": []}
    near = outsider_client.get("/api/v1/templates/secret-tol").json()
    assert "secret-tool" not in near["error"]["details"]["suggestions"]
    assert "secret-tool" not in str(outsider_client.get(CAT + "?q=secret").json())
    response = outsider_client.post("/api/v1/sandboxes", {"template": "secret-tool"}, format="json")
    assert response.status_code == 400 and _code(response) == "unknown_template"
    details = response.json()["error"]["details"]
    assert "secret-tool" not in details["available"] and details["suggestions"] == []
    response = outsider_client.post(f"{CAT}/secret-tool/versions/1.0.0/yank", {}, format="json")
    assert response.status_code == 404


def test_a_public_template_is_everyones_and_its_name_is_the_authors(
    api_client, outsider_client, owner, outsider, publish, actor_of_user
):
    publish(owner, "open-tool", visibility="public", tags="[cli]")
    assert outsider_client.get("/api/v1/templates/open-tool").json()["visibility"] == "public"
    body = outsider_client.get(f"{CAT}/open-tool").json()
    assert body["owner"] == personal_org_ensure(user=owner).slug and body["official"] is False
    assert body["latestVersion"] == "1.0.0" and [v["version"] for v in body["versions"]] == ["1.0.0"]
    response = outsider_client.post(
        "/api/v1/marketplace/submissions",
        {"dockerfile": DOCKERFILE, "templateYaml": yaml_for("open-tool", "2.0.0")},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["name"][0]["code"] == "taken"
    # The author's next version of a public template cannot go private.
    response = api_client.post(
        "/api/v1/marketplace/submissions",
        {"dockerfile": DOCKERFILE, "templateYaml": yaml_for("open-tool", "2.0.0"), "visibility": "private"},
        format="json",
    )
    assert response.json()["error"]["details"]["fields"]["visibility"][0]["code"] == "public_template"


def test_pinning_yank_and_usage_on_create(api_client, create_sandbox, owner, publish, python_image):
    base = "FROM vibebox/python-3.13\nRUN true\n"
    publish(owner, "pin-tool", "1.0.0", image=python_image, dockerfile=base)
    publish(owner, "pin-tool", "1.1.0", image=python_image, dockerfile=base, changelog='"Faster."')
    template = Template.objects.get(name="pin-tool")
    assert template.user == "sandbox" and template.latest_version == "1.1.0"

    latest = create_sandbox(template="pin-tool", autoStart=False)
    assert latest["template"] == "pin-tool" and latest["templateVersion"] == "1.1.0"
    pinned = create_sandbox(template="pin-tool@1.0.0", autoStart=False)
    assert pinned["templateVersion"] == "1.0.0"
    assert api_client.get(f"/api/v1/sandboxes/{pinned['id']}").json()["templateVersion"] == "1.0.0"

    response = api_client.post(f"{CAT}/pin-tool/versions/1.1.0/yank", {"reason": "broken"}, format="json")
    assert response.status_code == 200 and response.json()["yanked"] is True
    assert AuditEntry.objects.filter(action="template.version_yanked").exists()
    assert create_sandbox(template="pin-tool", autoStart=False)["templateVersion"] == "1.0.0"
    error = create_sandbox(template="pin-tool@1.1.0", expect=400)["error"]
    assert error["code"] == "template_version_yanked" and error["details"]["reason"] == "broken"
    error = create_sandbox(template="pin-tool@9.9.9", expect=400)["error"]
    assert error["code"] == "unknown_template_version" and error["details"]["versions"] == ["1.0.0"]
    error = create_sandbox(template="python-3.13@1.0.0", expect=400)["error"]
    assert error["code"] == "unknown_template_version"
    # The running (stopped) sandbox of the yanked version is untouched.
    assert api_client.get(f"/api/v1/sandboxes/{latest['id']}").json()["templateVersion"] == "1.1.0"

    uses = TemplateUse.objects.filter(template=template)
    assert sorted(uses.values_list("version", flat=True)) == ["1.0.0", "1.0.0", "1.1.0"]
    detail = api_client.get(f"{CAT}/pin-tool").json()
    assert detail["usage"] == {"total": 3, "last30Days": 3}
    assert [(v["version"], v["yanked"]) for v in detail["versions"]] == [("1.1.0", True), ("1.0.0", False)]
    assert detail["versions"][0]["changelog"] == "Faster."
    assert TemplateUse.objects.filter(template__name="python-3.13").count() == 0  # the failed create left none

    # Yank the last one: a bare name has nothing left to create from.
    api_client.post(f"{CAT}/pin-tool/versions/1.0.0/yank", {}, format="json")
    assert create_sandbox(template="pin-tool", expect=400)["error"]["code"] == "template_version_yanked"


def test_reviews_only_by_users_who_used_it(api_client, outsider_client, owner, outsider, publish, client_for):
    publish(owner, "rate-me", visibility="public")
    template = Template.objects.get(name="rate-me")
    response = outsider_client.post(f"{CAT}/rate-me/reviews", {"rating": 5}, format="json")
    assert response.status_code == 403 and _code(response) == "review_not_allowed"
    TemplateUse.objects.create(
        template=template, version="1.0.0", org=personal_org_ensure(user=outsider), user=outsider
    )
    TemplateUse.objects.create(template=template, version="1.0.0", org=personal_org_ensure(user=owner), user=owner)
    response = outsider_client.post(f"{CAT}/rate-me/reviews", {"rating": 4, "text": "good"}, format="json")
    assert response.status_code == 201 and response.json()["user"] == "outsider"
    response = outsider_client.post(f"{CAT}/rate-me/reviews", {"rating": 2, "text": "worse"}, format="json")
    assert response.status_code == 200 and response.json()["rating"] == 2  # edited, still one
    assert api_client.post(f"{CAT}/rate-me/reviews", {"rating": 5}, format="json").status_code == 201
    for bad in (
        {"rating": 0},
        {"rating": 6},
        {"rating": "5"},
        {"rating": 3, "stars": 1},
        {"rating": 3, "text": "x" * 4001},
    ):
        response = outsider_client.post(f"{CAT}/rate-me/reviews", bad, format="json")
        assert response.status_code == 400, bad
    reviews = api_client.get(f"{CAT}/rate-me/reviews").json()
    assert reviews["count"] == 2 and {r["user"] for r in reviews["results"]} == {"owner", "outsider"}
    detail = api_client.get(f"{CAT}/rate-me").json()
    assert detail["rating"] == {"average": 3.5, "count": 2} and detail["usage"]["total"] == 2
    read_only = client_for(outsider, ["templates:read"])
    response = read_only.post(f"{CAT}/rate-me/reviews", {"rating": 5}, format="json")
    assert response.status_code == 403 and _code(response) == "insufficient_scope"


def test_catalogue_search_filter_and_sort(api_client, owner, outsider, publish, templates):
    publish(
        owner, "alpha-web", visibility="public", tags="[react, web]", languages="[typescript]", description="A web UI"
    )
    publish(owner, "beta-data", visibility="public", tags="[data]", languages="[python]", description="Notebooks")
    publish(owner, "gamma-cli", tags="[cli]", languages="[go]", description="A command line")
    alpha, beta = Template.objects.get(name="alpha-web"), Template.objects.get(name="beta-data")
    org = personal_org_ensure(user=owner)
    for _ in range(3):
        TemplateUse.objects.create(template=beta, org=org, user=owner)
    TemplateUse.objects.create(template=alpha, org=org, user=owner)
    Review.objects.create(template=alpha, user=owner, org=org, rating=5)
    Review.objects.create(template=beta, user=outsider, org=org, rating=2)

    def names(query=""):
        response = api_client.get(f"{CAT}?limit=500{query}")
        assert response.status_code == 200, response.json()
        return [t["name"] for t in response.json()["results"]]

    community = names("&official=false")
    assert set(community) == {"alpha-web", "beta-data", "gamma-cli"}
    assert "python-3.13" in names("&official=true") and "alpha-web" not in names("&official=true")
    assert names("&q=notebooks") == ["beta-data"]
    assert names("&q=web%20ui") == ["alpha-web"]
    assert names("&tag=react") == ["alpha-web"]
    assert names("&language=go&official=false") == ["gamma-cli"]
    assert names("&official=false&sort=usage")[:2] == ["beta-data", "alpha-web"]
    assert names("&official=false&sort=rating")[:2] == ["alpha-web", "beta-data"]
    assert names("&official=false&sort=name") == ["alpha-web", "beta-data", "gamma-cli"]
    assert names("&official=false&sort=newest")[0] == "gamma-cli"
    item = next(t for t in api_client.get(f"{CAT}?official=false").json()["results"] if t["name"] == "beta-data")
    assert item["rating"] == {"average": 2.0, "count": 1} and item["usage"] == {"total": 3, "last30Days": 3}
    for bad in ("sort=best", "featured=maybe", "limit=0"):
        response = api_client.get(f"{CAT}?{bad}")
        assert response.status_code == 400 and _code(response) == "validation_error", bad


def test_yank_deprecate_and_feature_permissions(api_client, owner, outsider, staff, publish, client_for, templates):
    publish(owner, "perm-tool", visibility="public")
    publish(owner, "perm-next", visibility="public")
    team = org_create(user=owner, name="Perm Team", slug="perm-team")
    member_add(org=team, user_ref="outsider", role="developer")
    # A developer of another org (even a member of the author's other org) may not yank it.
    developer = client_for(outsider)
    response = developer.post(f"{CAT}/perm-tool/versions/1.0.0/yank", {}, format="json")
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "staff"
    response = api_client.post(f"{CAT}/perm-tool/versions/3.0.0/yank", {}, format="json")
    assert response.status_code == 404 and _code(response) == "template_version_not_found"
    response = api_client.post(
        f"{CAT}/perm-tool/deprecate", {"message": "Use perm-next.", "replacement": "perm-next"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["deprecation"] == {"message": "Use perm-next.", "replacement": "perm-next"}
    response = api_client.post(f"{CAT}/perm-tool/deprecate", {"message": "x", "replacement": "nope"}, format="json")
    assert response.status_code == 400
    # Built-ins: staff only.
    response = api_client.post(f"{CAT}/python-3.13/deprecate", {"message": "old"}, format="json")
    assert response.status_code == 403
    response = api_client.post(f"{CAT}/perm-tool/feature", {"featured": True, "rank": 1}, format="json")
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "staff"
    staff_client = client_for(staff)
    response = staff_client.post(f"{CAT}/perm-tool/feature", {"featured": True, "rank": 1}, format="json")
    assert response.status_code == 200 and response.json()["featured"] is True
    assert api_client.get(f"{CAT}?featured=true").json()["results"][0]["name"] == "perm-tool"
    assert api_client.get(CAT).json()["results"][0]["name"] == "perm-tool"  # featured first by default
    assert AuditEntry.objects.filter(action="template.featured").exists()
    assert AuditEntry.objects.filter(action="template.deprecated").exists()


def test_an_orgs_admins_yank_its_templates_its_developers_may_not(owner, outsider, client_for, templates):
    team = org_create(user=owner, name="Yank Team", slug="yank-team")
    member_add(org=team, user_ref="outsider", role="developer")
    submission = services.submission_create(
        actor_in(user=owner, org=team), dockerfile=DOCKERFILE, template_yaml=yaml_for("team-tool")
    )
    pipeline_to_passed(submission.pk, image="vibebox/team-tool:1")
    developer = client_for(outsider, org=team)
    assert developer.get(f"{CAT}/team-tool").json()["owner"] == "yank-team"  # the team's private template
    response = developer.post(f"{CAT}/team-tool/versions/1.0.0/yank", {}, format="json")
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "members.manage"
    response = developer.post(f"{CAT}/team-tool/deprecate", {"message": "old"}, format="json")
    assert response.status_code == 403
    admin = client_for(owner, org=team)
    response = admin.post(f"{CAT}/team-tool/versions/1.0.0/yank", {"reason": "bad"}, format="json")
    assert response.status_code == 200 and response.json()["yankReason"] == "bad"
    assert Template.objects.get(name="team-tool").latest_version == ""
    # The owner's personal organization does not see the team's private template.
    assert client_for(owner).get(f"{CAT}/team-tool").status_code == 404
