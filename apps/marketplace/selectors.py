from vibebox import exceptions as errors

from .models import Template


def template_list():
    return Template.objects.filter(is_active=True)


def template_get(*, name: str) -> Template:
    template = Template.objects.filter(name=name, is_active=True).first()
    if template is None:
        raise errors.TemplateNotFound(details={"template": name})
    return template
