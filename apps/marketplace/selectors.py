import re

from vibebox import exceptions as errors

from .models import Template

SUGGESTIONS_MAX = 3
# "go-1.21" -> "go", "python-3.11-claude-code" -> "python": the name before its version.
FAMILY_RE = re.compile(r"^(.*?)(?:-\d.*)?$")


def template_list():
    return Template.objects.filter(is_active=True)


def template_find(name: str) -> Template | None:
    """An active template by its name or one of its aliases."""
    template = Template.objects.filter(name=name, is_active=True).first()
    if template is None:
        template = next((t for t in Template.objects.filter(is_active=True) if name in (t.aliases or [])), None)
    return template


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def template_suggestions(name: str) -> list[str]:
    """Active templates whose name (or an alias) is close to `name` by edit distance, or of the
    same family (`go-1.21` -> `go-1.24`), nearest first; canonical names, at most three."""
    wanted = name.strip().lower()
    family = FAMILY_RE.match(wanted).group(1)
    limit = max(2, len(wanted) // 3)
    scored: dict[str, int] = {}
    for template in Template.objects.filter(is_active=True):
        for candidate in [template.name, *(template.aliases or [])]:
            candidate = str(candidate).lower()
            distance = edit_distance(wanted, candidate)
            related = family and FAMILY_RE.match(candidate).group(1) == family
            if distance <= limit or related:
                scored[template.name] = min(distance, scored.get(template.name, distance))
    return sorted(scored, key=lambda n: (scored[n], n))[:SUGGESTIONS_MAX]


def template_get(*, name: str) -> Template:
    template = template_find(name)
    if template is None:
        raise errors.TemplateNotFound(
            f"Template {name!r} not found.", details={"template": name, "suggestions": template_suggestions(name)}
        )
    return template
