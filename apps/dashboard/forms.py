from django import forms

from apps.marketplace.models import BuildState
from apps.marketplace.selectors import template_list


def _unavailable_note(template) -> str:
    """Why a sandbox cannot start from this template yet ("" when it can): its first image is still
    queued or building, or its build failed. One with an older image stays usable while it rebuilds."""
    if template.image:
        return ""
    if template.build_state == BuildState.FAILED:
        return "build failed"
    progress = template.build_progress or {}
    if template.build_state == BuildState.BUILDING and progress.get("steps"):
        return f"building… {int(progress.get('step', 0)) * 100 // int(progress['steps'])}%"
    return "building…" if template.build_state == BuildState.BUILDING else "queued…"


class TemplateSelect(forms.Select):
    """A select whose options for templates that cannot start a sandbox yet are disabled."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.disabled_values: set[str] = set()

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        if str(value) in self.disabled_values:
            option["attrs"]["disabled"] = True
        return option


class SandboxCreateForm(forms.Form):
    template = forms.ChoiceField(widget=TemplateSelect)
    version = forms.CharField(
        max_length=32,
        required=False,
        help_text="Marketplace templates: a published version to pin (e.g. 1.2.0); empty: the latest.",
    )
    name = forms.CharField(max_length=63, required=False, help_text="Letters, digits and dashes; empty: generated.")
    ephemeral = forms.BooleanField(required=False, help_text="Destroyed when its timeout runs out.")
    timeout = forms.CharField(required=False, help_text="e.g. 30m, 2h, 1d; empty: no expiry (ephemeral: 30m).")
    env = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One NAME=value per line."
    )
    git_url = forms.CharField(required=False, label="Git URL", help_text="Cloned into /repo before it runs.")
    git_branch = forms.CharField(required=False, label="Git branch")
    cpu = forms.FloatField(required=False, min_value=0.1, help_text="Cores, e.g. 0.5 or 2.")
    memory = forms.CharField(required=False, help_text="e.g. 512m, 2g.")

    def __init__(self, *args, org=None, **kwargs):
        """`org`: the organization acted in, whose private marketplace templates are offered too
        (None: built-in and public ones)."""
        super().__init__(*args, **kwargs)
        choices, self.unavailable = [], {}
        for template in template_list(org):
            note = _unavailable_note(template)
            label = f"{template.display_name} ({template.name})"
            if not template.built_in:
                label += f" · {'community' if template.visibility == 'public' else 'private'}"
            choices.append((template.name, f"{label} ({note})" if note else label))
            if note:
                self.unavailable[template.name] = note
        field = self.fields["template"]
        field.choices = choices
        field.widget.disabled_values = set(self.unavailable)

    def clean_template(self):
        name = self.cleaned_data["template"]
        if name in self.unavailable:
            raise forms.ValidationError(
                f"Template {name} cannot start a sandbox yet ({self.unavailable[name]}); see the templates page."
            )
        return name

    def clean_version(self):
        version = self.cleaned_data["version"].strip()
        if version and not all(part.isdigit() for part in version.split(".")):
            raise forms.ValidationError("A version is like 1.2.0.")
        return version

    def template_ref(self) -> str:
        """What create takes: `name` or `name@version`."""
        data = self.cleaned_data
        return f"{data['template']}@{data['version']}" if data.get("version") else data["template"]

    def clean_env(self):
        env = {}
        for number, line in enumerate(self.cleaned_data["env"].splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Line {number} is not NAME=value.")
            env[name.strip()] = value
        return env
