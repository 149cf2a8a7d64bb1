from django import forms

from apps.marketplace.selectors import template_list


def _templates():
    return [(t.name, f"{t.display_name} ({t.name})") for t in template_list()]


class SandboxCreateForm(forms.Form):
    template = forms.ChoiceField(choices=_templates)
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
