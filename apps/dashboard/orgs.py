"""The dashboard's organization switcher: a signed-in user acts in one organization at a time
(their personal one until they choose), kept in their session (apps/keys/actors.py)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.keys.actors import SESSION_ORG
from apps.orgs import selectors as org_selectors


@login_required
@require_POST
def org_switch(request):
    slug = request.POST.get("org", "")
    if not org_selectors.org_list(user=request.user).filter(slug=slug).exists():
        raise Http404("No such organization.")
    request.session[SESSION_ORG] = slug
    return redirect("dashboard:sandboxes")
