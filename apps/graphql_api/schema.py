"""The GraphQL schema: one for /graphql over HTTP and over WebSockets."""

import strawberry
from strawberry.extensions import MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig

from .errors import RestErrors
from .limits import Limits
from .mutations import Mutation
from .queries import Query
from .rest_types import SCALARS
from .subscriptions import Subscription

MAX_TOKENS = 5000


class VibeBoxSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Strawberry logs every error with its stack; errors.py logs only the unexpected ones."""


schema = VibeBoxSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    # Tokens first: a huge document is refused while parsing, before its depth could exhaust the stack.
    extensions=[lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS), Limits, RestErrors],
    config=StrawberryConfig(disable_field_suggestions=True, scalar_map=SCALARS),
)
