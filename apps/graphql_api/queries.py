import strawberry
from strawberry.types import Info

from . import types


@strawberry.type
class Query:
    @strawberry.field(description="Who is asking, and where.")
    def viewer(self, info: Info) -> types.Viewer:
        user = info.context.user
        return types.Viewer(username=user.get_username(), email=user.email or "")
