from collections.abc import AsyncGenerator

import strawberry


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Placeholder until the subscriptions land (issue 27).")
    async def noop(self) -> AsyncGenerator[bool, None]:
        yield True
