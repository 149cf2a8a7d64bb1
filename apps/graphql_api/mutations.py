import strawberry


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Placeholder until the mutations land (issue 27).")
    def noop(self) -> bool:
        return True
