"""Writes for organizations and their members."""

import logging
import re
import smtplib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, router, transaction
from django.db.models import ProtectedError, RestrictedError
from django.db.models.deletion import Collector
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import record
from vibebox import exceptions as errors

from . import branding, selectors, signals, tokens
from .labels import check_labels
from .mirrors import validate_mirrors
from .models import Invitation, Membership, Organization, Role, Team
from .permissions import BUILTIN_ROLES, OWNER, unknown

logger = logging.getLogger(__name__)

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")


def _check_slug(slug: str) -> None:
    if not SLUG_PATTERN.match(slug):
        raise errors.ValidationFailed(
            "slug is 1 to 50 lowercase letters, digits and hyphens, not starting or ending with a hyphen.",
            details={"fields": {"slug": [{"message": "invalid slug", "code": "invalid"}]}},
        )


def _changed(org: Organization, user) -> None:
    transaction.on_commit(lambda: signals.membership_changed.send(sender=Membership, org=org, user=user))


def _free_slug(base: str) -> str:
    # slugify keeps underscores, which a slug may not have (SLUG_PATTERN): "create_latency" -> "create-latency".
    base = (slugify(base).replace("_", "-")[:40].strip("-") or "org").lower()
    slug, number = base, 1
    while Organization.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


def personal_org_ensure(*, user) -> Organization:
    """The user's personal organization (they are its owner), made on first need."""
    org = Organization.objects.filter(personal_for=user).first()
    if org is not None:
        return org
    try:
        with transaction.atomic():
            org = Organization.objects.create(
                slug=_free_slug(user.get_username()), name=user.get_username(), personal_for=user
            )
            Membership.objects.create(org=org, user=user, role=OWNER)
            record(
                "org.created", target=org, changes={"slug": org.slug, "personal": True, "owner": user.get_username()}
            )
    except IntegrityError:  # made meanwhile by another request (or its slug taken meanwhile: retry once)
        org = Organization.objects.filter(personal_for=user).first()
        if org is None:
            return personal_org_ensure(user=user)
    return org


def org_create(*, user, name: str, slug: str | None = None) -> Organization:
    """A new organization with `user` as its owner."""
    if not name:  # kept as given, like a key's name (the API's strings are never trimmed)
        raise errors.ValidationFailed("name is required.")
    if slug is None:
        slug = _free_slug(name)
    _check_slug(slug)
    try:
        with transaction.atomic():
            org = Organization.objects.create(slug=slug, name=name[:100])
            Membership.objects.create(org=org, user=user, role=OWNER)
            record("org.created", target=org, changes={"slug": org.slug, "name": org.name})
    except IntegrityError:
        raise errors.OrgSlugTaken(details={"slug": slug}) from None
    _changed(org, user)
    return org


def org_update(
    *,
    org: Organization,
    name: str | None = None,
    slug: str | None = None,
    registry_mirrors: dict | None = None,
    node_labels: dict | None = None,
) -> Organization:
    """`registry_mirrors` changes the mirrors it names ({manager: URL}; a null URL removes one);
    `node_labels` replaces the labels every new sandbox's engine must have ({} clears them)."""
    before = {
        "name": org.name,
        "slug": org.slug,
        "registry_mirrors": dict(org.registry_mirrors or {}),
        "node_labels": dict(org.node_labels or {}),
    }
    if node_labels is not None:
        org.node_labels = check_labels(node_labels)
    if registry_mirrors is not None:
        valid = validate_mirrors(registry_mirrors)
        merged = {**before["registry_mirrors"], **valid}
        org.registry_mirrors = {k: v for k, v in merged.items() if registry_mirrors.get(k, v) is not None}
    if name is not None:
        if not name:
            raise errors.ValidationFailed("name cannot be empty.")
        org.name = name[:100]
    if slug is not None and slug != org.slug:
        _check_slug(slug)
        org.slug = slug
    try:
        with transaction.atomic():
            org.save(update_fields=["name", "slug", "registry_mirrors", "node_labels"])
            changed = {f: [before[f], getattr(org, f)] for f in before if before[f] != getattr(org, f)}
            if changed:
                record("org.updated", target=org, changes=changed)
    except IntegrityError:
        raise errors.OrgSlugTaken(details={"slug": slug}) from None
    return org


def org_branding_update(*, org: Organization, values: dict) -> Organization:
    """Sets the white-label overrides `values` names (branding.validate: "" or None clears one);
    the others stay. One audit entry per override that changed (org.branding_updated)."""
    clean = branding.validate(values)
    with transaction.atomic():
        org = Organization.objects.select_for_update().get(pk=org.pk)
        before = dict(org.branding or {})
        after = {**before, **clean}
        after = {key: value for key, value in after.items() if value}
        org.branding = after
        org.save(update_fields=["branding"])
        for key in sorted(set(before) | set(after)):
            if before.get(key, "") != after.get(key, ""):
                record(
                    "org.branding_updated",
                    target=org,
                    changes={"setting": key, "before": before.get(key, ""), "after": after.get(key, "")},
                )
    return org


def org_delete(*, org: Organization) -> None:
    """Deletes an organization with its keys and records; one that still has sandboxes or
    snapshots is refused (destroy them first), as is a personal one."""
    if org.personal:
        raise errors.PersonalOrg("A personal organization is deleted only with its user.")
    members = list(org.memberships.values_list("user", flat=True))
    try:
        with transaction.atomic():
            signals.org_deleting.send(sender=Organization, org=org)
            record("org.deleted", target=org, changes={"slug": org.slug, "name": org.name})
            # Whatever holds a custom role first: a role is PROTECTed while held, and the
            # organization's delete would otherwise stop at its own roles.
            for holders in (org.memberships, org.teams, org.invitations):
                holders.all().delete()
            org.delete()
    except (ProtectedError, RestrictedError):
        raise errors.OrgNotEmpty() from None
    users = get_user_model().objects.filter(pk__in=members)
    for user in users:
        _changed(org, user)


def _delete_blockers(org: Organization, emptied: set[str]) -> set[str]:
    """Labels of the models whose rows would stop the organization's delete (PROTECT/RESTRICT):
    not its own holders of custom roles (org_delete removes them first), nor its own rows of the
    models the erasure empties (`emptied`); another organization's sandbox of a template this one
    owns does stop it."""
    collector = Collector(using=router.db_for_write(Organization))
    try:
        collector.collect([org])
    except ProtectedError as exc:
        rows = exc.protected_objects
    except RestrictedError as exc:
        rows = exc.restricted_objects
    else:
        return set()
    own = {model._meta.label_lower for model in (Membership, Team, Invitation, Role)}
    return {
        row._meta.label_lower
        for row in rows
        if row._meta.label_lower not in own
        and not (row._meta.label_lower in emptied and getattr(row, "org_id", None) == org.pk)
    }


def org_erase(*, org: Organization, confirm: str) -> None:
    """Deletion on request (docs/compliance.md): the organization's sandboxes are destroyed, its
    snapshots deleted and its keys revoked (signals.org_erasing), then its rows removed as
    org_delete does. The audit log is kept: entries name the organization by id, not foreign key,
    and go only by retention (VIBEBOX_AUDIT_RETENTION_DAYS, apps/audit/services.prune).
    `confirm` must repeat the slug, so a stray request cannot erase."""
    if org.personal:
        raise errors.PersonalOrg("A personal organization is deleted only with its user.")
    if confirm != org.slug:
        raise errors.ValidationFailed(
            "confirm must repeat the organization's slug.",
            details={"fields": {"confirm": [{"message": "does not match the slug", "code": "confirm_mismatch"}]}},
        )
    emptied = set().union(
        *(labels or set() for _, labels in signals.org_erasing.send(Organization, org=org, check=True))
    )
    blocking = _delete_blockers(org, emptied)
    if blocking:  # refused before anything is destroyed (issued invoices are kept: billing.invoice)
        raise errors.OrgNotEmpty(
            "Something the erasure does not remove keeps the organization.", details={"blocking": sorted(blocking)}
        )
    record("org.erasure_requested", target=org, changes={"slug": org.slug, "name": org.name})
    signals.org_erasing.send(sender=Organization, org=org)
    org_delete(org=org)


def role_resolve(*, org: Organization, name: str) -> tuple[str, Role | None]:
    """(built-in role name, None) or ("", the org's custom role) for a role name."""
    if name in BUILTIN_ROLES:
        return name, None
    custom = Role.objects.filter(org=org, name=name).first()
    if custom is None:
        raise errors.UnknownRole(
            f"No role {name!r} in {org.slug}.", details={"role": name[:50], "builtIn": list(BUILTIN_ROLES)}
        )
    return "", custom


def _ensure_may_handle(*, org: Organization, by, permissions: frozenset[str]) -> None:
    """A member gives or takes away only a role whose permissions they hold all of themselves (so
    an admin cannot make an owner, or demote one). `by` None: the system (a management command)."""
    if by is None:
        return
    missing = sorted(permissions - selectors.permissions_of(user=by, org=org))
    if missing:
        raise errors.PermissionDenied(
            f"Only a member holding every permission of a role can give or take it ({', '.join(missing)}).",
            details={"permission": missing[0], "missing": missing, "org": org.slug},
        )


def _user_named(ref: str):
    users = get_user_model().objects.filter(is_active=True)
    user = users.filter(username=ref).first() or (users.filter(email__iexact=ref).first() if "@" in ref else None)
    if user is None:
        raise errors.UserNotFound(details={"user": ref[:150]})
    return user


def member_add(*, org: Organization, user_ref: str, role: str, by=None) -> Membership:
    """Adds an existing user (by username or email) with a role."""
    if org.personal:
        raise errors.PersonalOrg("A personal organization has no other members; create an organization to share.")
    role_name, custom = role_resolve(org=org, name=role)
    _ensure_may_handle(org=org, by=by, permissions=selectors.role_permissions(role_name, custom))
    user = _user_named(user_ref)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(org=org, user=user, role=role_name, custom_role=custom)
            record("member.added", target=membership, changes={"user": user.get_username(), "role": role})
    except IntegrityError:
        raise errors.AlreadyMember(details={"user": user.get_username()}) from None
    _changed(org, user)
    return membership


def _ensure_owner_left(membership: Membership) -> None:
    if membership.role != OWNER:
        return
    others = Membership.objects.filter(org=membership.org, role=OWNER).exclude(pk=membership.pk)
    if not others.exists():
        raise errors.LastOwner(details={"org": membership.org.slug})


def member_update(*, membership: Membership, role: str, by=None) -> Membership:
    role_name, custom = role_resolve(org=membership.org, name=role)
    given, taken = (
        selectors.role_permissions(role_name, custom),
        selectors.role_permissions(membership.role, membership.custom_role),
    )
    _ensure_may_handle(org=membership.org, by=by, permissions=given | taken)
    with transaction.atomic():
        # Locks the org's owners: two demotions at once cannot both leave it without one.
        list(Membership.objects.select_for_update().filter(org=membership.org, role=OWNER))
        if role_name != OWNER:
            _ensure_owner_left(membership)
        before = membership.role_name
        membership.role, membership.custom_role = role_name, custom
        membership.save(update_fields=["role", "custom_role"])
        record(
            "member.role_changed",
            target=membership,
            changes={"user": membership.user.get_username(), "role": [before, membership.role_name]},
        )
    _changed(membership.org, membership.user)
    return membership


def member_remove(*, membership: Membership, by=None) -> None:
    """Removes a member (`by` themselves: they leave, whatever their role)."""
    if by is not None and by.pk != membership.user_id:
        taken = selectors.role_permissions(membership.role, membership.custom_role)
        _ensure_may_handle(org=membership.org, by=by, permissions=taken)
    with transaction.atomic():
        list(Membership.objects.select_for_update().filter(org=membership.org, role=OWNER))
        _ensure_owner_left(membership)
        for team in membership.org.teams.filter(members=membership.user):
            team.members.remove(membership.user)
        record(
            "member.removed",
            target=membership,
            changes={"user": membership.user.get_username(), "role": membership.role_name},
        )
        signals.member_removing.send(sender=Membership, org=membership.org, user=membership.user)
        membership.delete()
    _changed(membership.org, membership.user)


def _check_permissions(permissions: list[str]) -> list[str]:
    bad = unknown(permissions)
    if bad:
        raise errors.UnknownPermission(details={"unknown": bad})
    return sorted(set(permissions))


def _changed_all(org: Organization) -> None:
    """What several members may do changed (a role's permissions, a team): their keys are read again."""
    transaction.on_commit(lambda: signals.membership_changed.send(sender=Membership, org=org, user=None))


def role_create(*, org: Organization, name: str, permissions: list[str], description: str = "", by=None) -> Role:
    """A custom role: a name (not a built-in one) and permissions the creator holds all of."""
    if name in BUILTIN_ROLES:
        raise errors.RoleNameTaken(f"{name} is a built-in role.", details={"role": name})
    permissions = _check_permissions(permissions)
    _ensure_may_handle(org=org, by=by, permissions=frozenset(permissions))
    try:
        with transaction.atomic():
            role = Role.objects.create(org=org, name=name, permissions=permissions, description=description)
            record("role.created", target=role, changes={"name": name, "permissions": permissions})
            return role
    except IntegrityError:
        raise errors.RoleNameTaken(details={"role": name}) from None


def role_update(*, role: Role, permissions: list[str] | None = None, description: str | None = None, by=None) -> Role:
    if permissions is not None:
        permissions = _check_permissions(permissions)
        _ensure_may_handle(org=role.org, by=by, permissions=frozenset(permissions) | frozenset(role.permissions))
        role.permissions = permissions
    if description is not None:
        role.description = description
    with transaction.atomic():
        role.save(update_fields=["permissions", "description"])
        record(
            "role.updated",
            target=role,
            changes={"name": role.name, "permissions": role.permissions, "description": role.description},
        )
    _changed_all(role.org)
    return role


def role_delete(*, role: Role, by=None) -> None:
    """Refused while a member, a team or a pending invitation holds the role (finished
    invitations to it go with it)."""
    _ensure_may_handle(org=role.org, by=by, permissions=frozenset(role.permissions))
    try:
        with transaction.atomic():
            if selectors.invitation_list(org=role.org).filter(custom_role=role).exists():
                raise errors.RoleInUse(
                    "Pending invitations hold this role; revoke them first.", details={"role": role.name}
                )
            record("role.deleted", target=role, changes={"name": role.name})
            role.delete()
    except ProtectedError:
        raise errors.RoleInUse(details={"role": role.name}) from None


def team_create(*, org: Organization, name: str, role: str | None = None, by=None) -> Team:
    """A team; its members inherit its role (none: a team only to share sandboxes with)."""
    role_name, custom = role_resolve(org=org, name=role) if role else ("", None)
    if role:
        _ensure_may_handle(org=org, by=by, permissions=selectors.role_permissions(role_name, custom))
    try:
        with transaction.atomic():
            team = Team.objects.create(org=org, name=name, role=role_name, custom_role=custom)
            record("team.created", target=team, changes={"name": name, "role": team.role_name})
            return team
    except IntegrityError:
        raise errors.TeamNameTaken(details={"team": name}) from None


def team_update(*, team: Team, name: str | None = None, role: str | None = None, by=None) -> Team:
    """`role` "" takes the team's role away."""
    if role is not None:
        role_name, custom = role_resolve(org=team.org, name=role) if role else ("", None)
        given = selectors.role_permissions(role_name, custom)
        _ensure_may_handle(
            org=team.org, by=by, permissions=given | selectors.role_permissions(team.role, team.custom_role)
        )
        team.role, team.custom_role = role_name, custom
    if name is not None:
        team.name = name
    try:
        with transaction.atomic():
            team.save(update_fields=["name", "role", "custom_role"])
            record("team.updated", target=team, changes={"name": team.name, "role": team.role_name})
    except IntegrityError:
        raise errors.TeamNameTaken(details={"team": name}) from None
    _changed_all(team.org)
    return team


def team_delete(*, team: Team, by=None) -> None:
    _ensure_may_handle(org=team.org, by=by, permissions=selectors.role_permissions(team.role, team.custom_role))
    with transaction.atomic():
        record("team.deleted", target=team, changes={"name": team.name})
        team.delete()
    _changed_all(team.org)


def team_member_add(*, team: Team, user_ref: str, by=None) -> None:
    """Adds a member of the team's organization (anyone else: 404 member_not_found)."""
    _ensure_may_handle(org=team.org, by=by, permissions=selectors.role_permissions(team.role, team.custom_role))
    user = _user_named(user_ref)
    if not Membership.objects.filter(org=team.org, user=user).exists():
        raise errors.MemberNotFound(f"{user.get_username()} is not a member of {team.org.slug}.")
    with transaction.atomic():
        team.members.add(user)
        record("team.member_added", target=team, changes={"team": team.name, "user": user.get_username()})
    _changed(team.org, user)


def team_member_remove(*, team: Team, user_ref: str, by=None) -> None:
    _ensure_may_handle(org=team.org, by=by, permissions=selectors.role_permissions(team.role, team.custom_role))
    user = team.members.filter(username=user_ref).first()
    if user is None:
        raise errors.MemberNotFound(details={"member": user_ref[:150]})
    with transaction.atomic():
        team.members.remove(user)
        record("team.member_removed", target=team, changes={"team": team.name, "user": user.get_username()})
    _changed(team.org, user)


# ---- Invitations (by email, accepted through a signed link: tokens.py) ----


def _invitation_link(invitation: Invitation, base_url: str) -> str:
    origin = (settings.VIBEBOX_PUBLIC_URL or base_url).rstrip("/")
    return f"{origin}/invitations/{tokens.invitation_token(invitation)}"


def _deliver(subject: str, body: str, to: str, sender: str) -> None:
    try:
        send_mail(subject, body, sender, [to])
    except (smtplib.SMTPException, OSError):  # the invitation stands: it can be sent again
        logger.exception("Could not send the invitation email to %s", to)


def _send_invitation(invitation: Invitation, *, base_url: str) -> None:
    """The invitation's email (plain text with the link), sent once the transaction commits."""
    inviter = invitation.invited_by
    brand = branding.brand_for(invitation.org)  # the dashboard they are invited to; the sender: the installation's
    context = {
        "brand": brand,
        "org": invitation.org,
        "role": invitation.role_name,
        "inviter": (inviter.get_full_name() or inviter.get_username()) if inviter else "",
        "link": _invitation_link(invitation, base_url),
        "expires_at": invitation.expires_at,
    }
    # One line: an organization's name may hold a line break, a header may not.
    subject = " ".join(render_to_string("orgs/invitation_email_subject.txt", context).split())
    body = render_to_string("orgs/invitation_email.txt", context)
    transaction.on_commit(lambda: _deliver(subject, body, invitation.email, brand.email_from))


def _invitation_times(invitation: Invitation) -> None:
    invitation.sent_at = timezone.now()
    invitation.expires_at = invitation.sent_at + timedelta(days=settings.VIBEBOX_INVITATION_DAYS)


def invitation_create(*, org: Organization, email: str, role: str, base_url: str, by=None) -> tuple[Invitation, bool]:
    """Invites an email address with a role (one the inviter holds every permission of) and sends
    the link. The address already invited (pending, expired or not): that invitation is sent again
    with the new role and a fresh expiry. Answers (the invitation, whether it is new)."""
    if org.personal:
        raise errors.PersonalOrg("A personal organization has no other members; create an organization to share.")
    role_name, custom = role_resolve(org=org, name=role)
    _ensure_may_handle(org=org, by=by, permissions=selectors.role_permissions(role_name, custom))
    email = email.lower()
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise errors.AlreadyMember(f"{email} is already a member of {org.slug}.", details={"email": email})
    try:
        return _invitation_write(org=org, email=email, role=(role_name, custom), base_url=base_url, by=by)
    except IntegrityError:  # the address invited meanwhile by another request: that one is sent again
        return _invitation_write(org=org, email=email, role=(role_name, custom), base_url=base_url, by=by)


def _invitation_write(*, org, email, role, base_url, by) -> tuple[Invitation, bool]:
    with transaction.atomic():
        pending = Invitation.objects.filter(org=org, email=email, accepted_at__isnull=True, revoked_at__isnull=True)
        invitation = pending.select_for_update().first()
        created = invitation is None
        if created:
            invitation = Invitation(org=org, email=email)
        else:  # changing its role takes the old one away: the same rule
            taken = selectors.role_permissions(invitation.role, invitation.custom_role)
            _ensure_may_handle(org=org, by=by, permissions=taken)
        invitation.role, invitation.custom_role = role
        invitation.invited_by = by or invitation.invited_by
        _invitation_times(invitation)
        invitation.save()
        record(
            "invitation.created" if created else "invitation.sent_again",
            target=invitation,
            changes={"email": email, "role": invitation.role_name, "expiresAt": invitation.expires_at.isoformat()},
        )
        _send_invitation(invitation, base_url=base_url)
    return invitation, created


def invitation_resend(*, invitation: Invitation, base_url: str, by=None) -> Invitation:
    """Sends a pending invitation again, with a fresh expiry (the link stays the same)."""
    _ensure_may_handle(
        org=invitation.org, by=by, permissions=selectors.role_permissions(invitation.role, invitation.custom_role)
    )
    with transaction.atomic():
        _invitation_times(invitation)
        updated = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
            sent_at=invitation.sent_at, expires_at=invitation.expires_at
        )
        if not updated:
            raise errors.InvitationNotFound(details={"invitation": invitation.pk})
        record("invitation.sent_again", target=invitation, changes={"email": invitation.email})
        _send_invitation(invitation, base_url=base_url)
    return invitation


def invitation_revoke(*, invitation: Invitation, by=None) -> None:
    """Its link stops working (404 invitation_not_found)."""
    _ensure_may_handle(
        org=invitation.org, by=by, permissions=selectors.role_permissions(invitation.role, invitation.custom_role)
    )
    with transaction.atomic():
        pending = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True)
        if not pending.update(revoked_at=timezone.now()):
            raise errors.InvitationNotFound(details={"invitation": invitation.pk})
        record("invitation.revoked", target=invitation, changes={"email": invitation.email})


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """`user` joins the organization with the invited role (selectors.invitation_check says who may)."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
        if invitation is None:  # deleted meanwhile (the admin)
            raise errors.InvitationNotFound()
        selectors.invitation_check(invitation=invitation, user=user)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    org=invitation.org, user=user, role=invitation.role, custom_role=invitation.custom_role
                )
        except IntegrityError:
            raise errors.AlreadyMember(details={"user": user.get_username()}) from None
        invitation.accepted_at, invitation.accepted_by = timezone.now(), user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        record(
            "invitation.accepted",
            target=invitation,
            user=user,
            changes={"email": invitation.email, "user": user.get_username(), "role": invitation.role_name},
        )
        record("member.added", target=membership, changes={"user": user.get_username(), "role": membership.role_name})
    _changed(invitation.org, user)
    return membership
