"""Password sign-in refused to members of an organization that requires single sign-on."""

from django.core.exceptions import ValidationError

from vibebox.login_limits import LimitedAdminAuthenticationForm, LimitedAuthenticationForm

from . import selectors


class SsoRequiredMixin:
    """After the password matched (and the lockout counted it as a success: a refusal here is no
    wrong guess), a member of an organization requiring SSO is sent there."""

    sso_required = False

    def clean(self):
        cleaned = super().clean()
        user = self.get_user()
        orgs = selectors.sso_required_orgs(user=user) if user is not None else []
        if orgs:
            self.sso_required = True
            names = ", ".join(org.name for org in orgs)
            raise ValidationError(
                f"{names} requires single sign-on: use “Continue with SSO” with your email.", code="sso_required"
            )
        return cleaned


class LoginForm(SsoRequiredMixin, LimitedAuthenticationForm):
    pass


class AdminLoginForm(SsoRequiredMixin, LimitedAdminAuthenticationForm):
    pass
