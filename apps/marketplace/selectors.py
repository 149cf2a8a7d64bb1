from vibebox import exceptions as errors

from .models import Template


def template_list():
    return Template.objects.filter(is_active=True)


def template_find(name: str) -> Template | None:
    """An active template by its name or one of its aliases."""
    template = Template.objects.filter(name=name, is_active=True).first()
    if template is None:
        template = next((t for t in Template.objects.filter(is_active=True) if name in (t.aliases or [])), None)
    return template


def template_get(*, name: str) -> Template:
    template = template_find(name)
    if template is None:
        raise errors.TemplateNotFound(details={"template": name})
    return template
