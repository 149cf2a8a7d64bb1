"""The dashboard's marketplace pages (`/marketplace/`) through the Django test client and the real
database, with versions published through the marketplace's real services (the pipeline's calls,
with an image tag that is not built: no page here starts a container): the catalogue's search,
filters, sort and htmx fragment; a template's page (the readme's Markdown rendered with raw HTML
escaped and unsafe links dropped, versions, yank, deprecate, reviews and who may rate); the new
sandbox form offering the organization's templates and refusing a yanked pin; the submit form; a
submission's page with its build log polled from an offset; the staff review queue (403 for
others, approve and reject); another organization's private template and submission (404)."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.marketplace import services
from apps.marketplace.catalog import built_in_templates
from apps.marketplace.models import Review, Submission, Template, TemplateVersion
from apps.orgs.services import personal_org_ensure
from tests.marketplace.conftest import (  # noqa: F401 (fixtures)
    DOCKERFILE,
    actor_of_user,
    marketplace_dir,
    publish,
    staff,
    tar_of,
    yaml_for,
)

pytestmark = pytest.mark.django_db

README = (
    '|\n  # Alpha tool\n  Crunches **numbers**.\n\n  <script>alert("readme")</script>\n\n'
    "  [bad link](javascript:alert(1)) and [good link](https://example.com/docs)\n"
)


def _page(response) -> str:
    assert response.status_code == 200, (response.status_code, response.content[:500])
    return response.content.decode()


def _cards(page: str) -> list[str]:
    return re.findall(r'<article class="card market-card" data-template="([^"]+)"', page)


def _slug(user) -> str:
    return personal_org_ensure(user=user).slug


@pytest.fixture
def catalogue(owner, outsider, publish):  # noqa: F811 (the fixture)
    """alpha-tool and beta-web: public, by outsider; gamma-secret: private to owner's organization."""
    publish(
        outsider,
        "alpha-tool",
        visibility="public",
        description='"Crunches numbers"',
        tags="[cli, data]",
        languages="[python]",
        icon='"🧮"',
        readme=README,
    )
    publish(outsider, "beta-web", visibility="public", description='"A web server"', tags="[web]", languages="[go]")
    publish(owner, "gamma-secret", description='"hush"', tags="[cli]")
    # An official one, seeded as at start (its name has a dot; its image is not built here).
    services.template_upsert(source=next(s for s in built_in_templates() if s.name == "python-3.13"))
    return {name: Template.objects.get(name=name) for name in ("alpha-tool", "beta-web", "gamma-secret")}


def _use(template, user):
    """What sandboxes' create records for a sandbox made from the template (who may rate, usage)."""
    services.template_use_record(
        template=template, version=template.latest_version, org=personal_org_ensure(user=user), user=user
    )


def test_the_catalogue_searches_filters_and_sorts(
    browser,
    outsider_browser,
    catalogue,
    owner,
    outsider,
    staff,  # noqa: F811 (the fixture)
    actor_of_user,  # noqa: F811
):
    page = _page(browser.get("/marketplace/"))
    assert 'href="/marketplace/" aria-current="page">Marketplace<' in page  # the nav link
    assert sorted(_cards(page)) == [
        "alpha-tool",
        "beta-web",
        "gamma-secret",
        "python-3.13",
    ]  # the org's private one too
    assert 'href="/marketplace/python-3.13/"' in page and "badge-official" in page
    assert "🧮" in page and "badge-community" in page and "Crunches numbers" in page
    assert 'id="catalogue-filters"' in page and 'hx-target="#catalogue-results"' in page
    assert '<option value="python"' in page and '<option value="web"' in page  # filter choices

    # Another organization does not see the private one.
    assert sorted(_cards(_page(outsider_browser.get("/marketplace/")))) == ["alpha-tool", "beta-web", "python-3.13"]
    # Signed out: the public catalogue.
    assert sorted(_cards(_page(Client().get("/marketplace/")))) == ["alpha-tool", "beta-web", "python-3.13"]

    assert _cards(_page(browser.get("/marketplace/?q=numbers"))) == ["alpha-tool"]
    assert _cards(_page(browser.get("/marketplace/?q=web+server"))) == ["beta-web"]
    assert sorted(_cards(_page(browser.get("/marketplace/?q=cli")))) == ["alpha-tool", "gamma-secret"]  # tags
    assert _cards(_page(browser.get("/marketplace/?language=go"))) == ["beta-web"]
    assert sorted(_cards(_page(browser.get("/marketplace/?tag=cli")))) == ["alpha-tool", "gamma-secret"]
    assert _cards(_page(browser.get("/marketplace/?kind=official"))) == ["python-3.13"]
    assert len(_cards(_page(browser.get("/marketplace/?kind=community")))) == 3
    page = _page(browser.get("/marketplace/?q=nothing-like-this"))
    assert _cards(page) == [] and 'id="catalogue-empty"' in page

    # Featured (staff's flag), then sorts by rating and by usage.
    services.template_feature(actor_of_user(staff), template=catalogue["beta-web"], featured=True)
    assert _cards(_page(browser.get("/marketplace/?featured=on"))) == ["beta-web"]
    alpha, beta = catalogue["alpha-tool"], catalogue["beta-web"]
    for _ in range(3):
        _use(alpha, owner)
    _use(beta, owner)
    _use(beta, outsider)
    services.review_upsert(actor_of_user(owner), template=alpha, rating=2)
    services.review_upsert(actor_of_user(owner), template=beta, rating=5)
    assert _cards(_page(browser.get("/marketplace/?sort=rating")))[:2] == ["beta-web", "alpha-tool"]
    page = _page(browser.get("/marketplace/?sort=usage"))
    assert _cards(page)[:2] == ["alpha-tool", "beta-web"] and "3 sandboxes in 30 days" in page
    assert _cards(_page(browser.get("/marketplace/?sort=newest")))[0] == "python-3.13"
    # An official template's page: no versions of its own, create from it.
    page = _page(browser.get("/marketplace/python-3.13/"))
    assert "An official template" in page and 'name="template" value="python-3.13"' in page

    # htmx (the filter form): the results alone, no page around them.
    fragment = _page(
        browser.get(
            "/marketplace/?language=python&kind=community", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="catalogue-results"
        )
    )
    assert fragment.startswith('<section id="catalogue-results"') and "<html" not in fragment
    assert _cards(fragment) == ["alpha-tool"]


def test_the_template_page_renders_markdown_safely(outsider_browser, catalogue):
    page = _page(outsider_browser.get("/marketplace/alpha-tool/"))
    readme = page[page.find('id="readme"') :][:1500]
    assert "<h1>Alpha tool</h1>" in readme and "<strong>numbers</strong>" in readme
    assert "&lt;script&gt;alert(&quot;readme&quot;)&lt;/script&gt;" in readme
    assert "<script>alert" not in page
    assert "javascript:" not in readme.split("[bad link]")[0] and 'href="javascript' not in page
    assert '<a href="https://example.com/docs" rel="nofollow noopener noreferrer">good link</a>' in readme
    assert 'data-version="1.0.0"' in page and "latest" in page
    # Create sandbox: the new-sandbox form with this template (and a version) chosen.
    assert 'action="/sandboxes/new"' in page and 'name="template" value="alpha-tool"' in page
    assert '<option value="1.0.0">1.0.0</option>' in page
    # The outsider is the author: yank and deprecate.
    assert 'action="/marketplace/alpha-tool/versions/1.0.0/yank"' in page
    assert 'action="/marketplace/alpha-tool/deprecate"' in page
    # Signed out: readable, no forms.
    anonymous = _page(Client().get("/marketplace/alpha-tool/"))
    assert "<h1>Alpha tool</h1>" in anonymous and "Sign in</a> to create a sandbox" in anonymous
    assert 'id="rate-form"' not in anonymous and "/yank" not in anonymous


def test_another_orgs_private_template_is_a_404(browser, outsider_browser, outsider, catalogue):
    assert _page(browser.get("/marketplace/gamma-secret/")).count("hush") >= 1
    assert outsider_browser.get("/marketplace/gamma-secret/").status_code == 404
    assert Client().get("/marketplace/gamma-secret/").status_code == 404
    body = {"org": _slug(outsider), "rating": "5"}
    assert outsider_browser.post("/marketplace/gamma-secret/rate", body).status_code == 404
    assert outsider_browser.post("/marketplace/gamma-secret/versions/1.0.0/yank", body).status_code == 404
    # The new sandbox form offers it to its organization only.
    assert 'value="gamma-secret"' in _page(browser.get("/sandboxes/new"))
    assert 'value="gamma-secret"' not in _page(outsider_browser.get("/sandboxes/new"))


def test_rating_is_refused_to_who_never_used_it(browser, owner, catalogue):
    org = _slug(owner)
    page = _page(browser.get("/marketplace/alpha-tool/"))
    assert 'id="rate-refused"' in page and 'id="rate-form"' not in page
    page = _page(browser.post("/marketplace/alpha-tool/rate", {"org": org, "rating": "4", "text": "nice"}, follow=True))
    assert "(review_not_allowed)" in page and "Only users who created a sandbox from alpha-tool" in page
    assert not Review.objects.exists()

    _use(catalogue["alpha-tool"], owner)
    page = _page(browser.get("/marketplace/alpha-tool/"))
    assert 'id="rate-form"' in page and 'id="rate-refused"' not in page
    page = _page(
        browser.post("/marketplace/alpha-tool/rate", {"org": org, "rating": "4", "text": "nice <b>x</b>"}, follow=True)
    )
    assert "your review is saved" in page and 'data-review-user="owner"' in page
    assert "nice &lt;b&gt;x&lt;/b&gt;" in page and "4.0 of 5 from 1 review" in page
    page = _page(browser.post("/marketplace/alpha-tool/rate", {"org": org, "rating": "2"}, follow=True))
    assert "Your review is updated" in page and Review.objects.get().rating == 2
    page = _page(browser.post("/marketplace/alpha-tool/rate", {"org": org, "rating": "9"}, follow=True))
    assert "Choose a rating from 1 to 5 stars." in page and Review.objects.get().rating == 2


def test_yank_and_deprecate_by_the_templates_admins(browser, outsider_browser, owner, outsider, catalogue, publish):  # noqa: F811
    publish(outsider, "alpha-tool", "1.1.0", visibility="public", changelog='"Faster **now**."')
    org = _slug(outsider)
    page = _page(outsider_browser.get("/marketplace/alpha-tool/"))
    assert "<p>Faster <strong>now</strong>.</p>" in page and "alpha-tool@1.1.0" in page
    # Not the owner's template: no buttons, and a POST is a 403 page.
    assert "/yank" not in _page(browser.get("/marketplace/alpha-tool/"))
    response = browser.post("/marketplace/alpha-tool/versions/1.1.0/yank", {"org": _slug(owner), "reason": "x"})
    assert response.status_code == 403 and "Only staff may change the template alpha-tool" in response.content.decode()

    page = _page(
        outsider_browser.post(
            "/marketplace/alpha-tool/versions/1.1.0/yank", {"org": org, "reason": "broken build"}, follow=True
        )
    )
    assert "alpha-tool@1.1.0 is yanked" in page
    assert re.search(r'data-version="1.1.0" class="yanked">.*?yanked.*?Yanked: broken build', page, re.S)
    assert TemplateVersion.objects.get(template__name="alpha-tool", version="1.1.0").yanked
    assert Template.objects.get(name="alpha-tool").latest_version == "1.0.0"
    # The yanked pin is not offered for a new sandbox, and the form refuses it.
    assert '<option value="1.1.0">' not in page
    page = _page(browser.get("/sandboxes/new?template=alpha-tool&version=1.1.0"))
    assert re.search(r'<option value="alpha-tool"[^>]*selected', page) and 'value="1.1.0"' in page
    page = _page(browser.post("/sandboxes/new", {"template": "alpha-tool", "version": "1.1.0"}))
    assert "(template_version_yanked)" in page

    page = _page(
        outsider_browser.post(
            "/marketplace/alpha-tool/deprecate",
            {"org": org, "message": "Use beta instead.", "replacement": "beta-web"},
            follow=True,
        )
    )
    assert 'id="deprecation"' in page and "Use beta instead." in page
    assert '<a href="/marketplace/beta-web/" id="replacement-link">beta-web</a>' in page
    assert "badge-deprecated" in _page(browser.get("/marketplace/"))
    page = _page(outsider_browser.post("/marketplace/alpha-tool/deprecate", {"org": org, "message": ""}, follow=True))
    assert 'id="deprecation"' not in page


def test_the_submit_form_queues_a_submission(browser, owner):
    org = _slug(owner)
    page = _page(browser.get("/marketplace/submit/"))
    assert 'enctype="multipart/form-data"' in page and 'name="visibility" value="public"' in page
    body = {
        "org": org,
        "dockerfile": DOCKERFILE,
        "template_yaml_file": SimpleUploadedFile("template.yaml", yaml_for("from-form", "0.1.0").encode()),
        "context": SimpleUploadedFile("ctx.tar", tar_of({"README.md": b"# hi\n"}), "application/x-tar"),
        "visibility": "public",
    }
    response = browser.post("/marketplace/submit/", body)
    submission = Submission.objects.get(template_name="from-form")
    assert response.status_code == 302 and response["Location"] == f"/marketplace/submissions/{submission.pk}/"
    assert submission.state == "queued" and submission.visibility == "public" and submission.version == "0.1.0"
    assert submission.context_bytes > 0 and submission.user == owner
    page = _page(browser.get(response["Location"]))
    assert 'data-state="queued"' in page and 'id="log-poller"' in page and 'hx-trigger="every 1s"' in page
    listed = _page(browser.get("/marketplace/submissions/"))
    assert f'data-submission="{submission.pk}"' in listed and "from-form@0.1.0" in listed

    # A bad template.yaml: the field errors on the form, what was typed kept, nothing created.
    response = browser.post(
        "/marketplace/submit/",
        {"org": org, "dockerfile": DOCKERFILE, "template_yaml": "name: Bad Name!\n", "visibility": "private"},
    )
    page = response.content.decode()
    assert response.status_code == 400 and 'id="submit-errors"' in page and "name: " in page
    assert "Bad Name!" in page and Submission.objects.count() == 1
    response = browser.post("/marketplace/submit/", {"org": org, "dockerfile": "", "template_yaml": ""})
    assert response.status_code == 400 and "Dockerfile: upload a file or paste it." in response.content.decode()


def test_the_build_log_is_polled_from_an_offset(browser, outsider_browser, owner, actor_of_user):  # noqa: F811
    submission = services.submission_create(
        actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("log-tool"), visibility="private"
    )
    url = f"/marketplace/submissions/{submission.pk}/"
    services.submission_start(submission.pk)
    first = services.submission_log_append(submission.pk, "Step 1/2 : FROM debian:trixie\n")
    page = _page(browser.get(url))
    assert re.search(r'<pre class="log" id="build-log"[^>]*>Step 1/2 : FROM debian:trixie\n</pre>', page)
    assert f'data-offset="{first}"' in page and f"offset={first}" in page

    poll = _page(browser.get(f"{url}?partial=log&offset={first}", HTTP_HX_REQUEST="true"))
    assert "beforeend:#build-log" not in poll and 'hx-trigger="every 1s"' in poll  # nothing new yet

    second = services.submission_log_append(submission.pk, "Step 2/2 : RUN echo <done>\n")
    poll = _page(browser.get(f"{url}?partial=log&offset={first}", HTTP_HX_REQUEST="true"))
    appended = re.search(r'<span hx-swap-oob="beforeend:#build-log">(.*?)</span>', poll, re.S).group(1)
    assert appended == "Step 2/2 : RUN echo &lt;done&gt;\n"  # only the new text, escaped
    assert "Step 1/2" not in poll
    assert f'data-offset="{second}"' in poll and f"offset={second}" in poll
    assert (
        re.search(r'<section id="submission-summary"[^>]*hx-swap-oob="outerHTML"', poll)
        and 'data-state="building"' in poll
    )

    services.submission_fail(submission.pk, step="build", message="RUN exited with 1")
    poll = _page(browser.get(f"{url}?partial=log&offset={second}", HTTP_HX_REQUEST="true"))
    assert 'data-live="0"' in poll and "hx-trigger" not in poll  # final: the polling stops
    assert "Failed at the <strong>build</strong> step: RUN exited with 1" in poll

    # Another organization's submission is a 404.
    assert outsider_browser.get(url).status_code == 404
    assert outsider_browser.get(f"{url}?partial=log&offset=0").status_code == 404


def test_the_review_queue_is_staffs(browser, owner, staff, actor_of_user, publish):  # noqa: F811
    from tests.marketplace.conftest import pipeline_to_passed

    page = browser.get("/marketplace/review/")
    assert page.status_code == 403 and "marketplace.review" in page.content.decode()
    submissions = []
    for name in ("queue-one", "queue-two"):
        submission = services.submission_create(
            actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for(name), visibility="public"
        )
        pipeline_to_passed(submission.pk, image="vibebox/test:1")
        submissions.append(Submission.objects.get(pk=submission.pk))
    assert {s.state for s in submissions} == {"awaiting_review"}
    response = browser.post(f"/marketplace/review/{submissions[0].pk}", {"org": _slug(owner), "decision": "approve"})
    assert response.status_code == 403 and "marketplace.review" in response.content.decode()

    reviewer = Client()
    reviewer.force_login(staff)
    page = _page(reviewer.get("/marketplace/review/"))
    assert f'data-submission="{submissions[0].pk}"' in page and f'data-submission="{submissions[1].pk}"' in page
    assert "ok\n" in page  # the smoke output
    assert "Review queue" in _page(reviewer.get("/marketplace/"))
    # Staff feature templates from their page (others: no form, and a 403 page).
    publish(owner, "featured-one", visibility="public")
    assert 'id="feature-form"' not in _page(browser.get("/marketplace/featured-one/"))
    response = browser.post("/marketplace/featured-one/feature", {"org": _slug(owner), "featured": "on"})
    assert response.status_code == 403 and "Only staff may feature templates" in response.content.decode()
    assert 'id="feature-form"' in _page(reviewer.get("/marketplace/featured-one/"))
    page = _page(
        reviewer.post(
            "/marketplace/featured-one/feature", {"org": _slug(staff), "featured": "on", "rank": "2"}, follow=True
        )
    )
    assert "featured-one is featured." in page and Template.objects.get(name="featured-one").featured_rank == 2
    assert _cards(_page(Client().get("/marketplace/?featured=on"))) == ["featured-one"]
    org = _slug(staff)
    page = _page(
        reviewer.post(f"/marketplace/review/{submissions[0].pk}", {"org": org, "decision": "approve"}, follow=True)
    )
    assert "queue-one@1.0.0 is published." in page and f'data-submission="{submissions[0].pk}"' not in page
    assert Submission.objects.get(pk=submissions[0].pk).state == "published"
    assert "queue-one" in _cards(_page(Client().get("/marketplace/")))  # now in the public catalogue

    page = _page(
        reviewer.post(f"/marketplace/review/{submissions[1].pk}", {"org": org, "decision": "reject"}, follow=True)
    )
    assert "Say why it is rejected" in page and Submission.objects.get(pk=submissions[1].pk).state == "awaiting_review"
    page = _page(
        reviewer.post(
            f"/marketplace/review/{submissions[1].pk}",
            {"org": org, "decision": "reject", "reason": "no tests"},
            follow=True,
        )
    )
    assert "queue-two@1.0.0 is rejected." in page and 'id="queue-empty"' in page
    rejected = Submission.objects.get(pk=submissions[1].pk)
    assert rejected.state == "rejected" and rejected.review_reason == "no tests"
    page = _page(browser.get(f"/marketplace/submissions/{rejected.pk}/"))
    assert "Rejected: no tests" in page and "hx-trigger" not in page
