"""Query parameters the OpenAPI document types: a value of another type is a 400, never read loosely."""

from vibebox import exceptions as errors


def query_flag(request, name: str, *, default: bool = False) -> bool:
    """A boolean query parameter: `true` or `false`, given at most once."""
    values = request.query_params.getlist(name)
    if not values:
        return default
    if len(values) == 1 and values[0] in ("true", "false"):
        return values[0] == "true"
    raise errors.ValidationFailed(
        f"{name} is true or false.", details={"fields": {name: [{"message": "not a boolean", "code": "invalid"}]}}
    )
