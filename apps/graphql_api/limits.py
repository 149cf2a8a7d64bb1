"""What one GraphQL document may ask for, checked before anything executes (HTTP and WebSocket):

- depth: at most VIBEBOX_GRAPHQL_MAX_DEPTH nested selections (fragments counted where they are spread);
- cost: every field costs 1 (one that works inside the sandbox more: FIELD_COST), and a field taking
  `first` multiplies its selections' cost by the page size it asks for (a variable's value, else its
  declared default, else the default page size); at most VIBEBOX_GRAPHQL_MAX_COST;
- mutations: at most VIBEBOX_GRAPHQL_MAX_MUTATIONS writes in one document (one document spends one
  unit of the key's rate budget, as one REST request does: hundreds of aliased writes may not);
- introspection (`__schema`, `__type`) unless VIBEBOX_GRAPHQL_INTROSPECTION is off.

A refusal is a 400-class error with its own code (`graphql_too_deep`, `graphql_too_complex`,
`graphql_introspection_disabled`) and the numbers in `details`.
"""

from collections.abc import Iterator

from django.conf import settings
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from vibebox import exceptions as app

from .errors import extensions_for
from .relay import DEFAULT_PAGE_SIZE

INTROSPECTION_FIELDS = {"__schema", "__type"}
# Fields answered by asking the sandbox (sandboxd, the engine's stats, git in the container): each
# one is a round trip of up to a second, so they weigh like a page of rows.
FIELD_COST = {"metrics": 40, "files": 20, "git": 20, "processes": 20, "pendingChanges": 20, "sessions": 10}


class _Walk:
    def __init__(self, document, variables: dict | None):
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.variables = variables or {}
        # A variable the request leaves out takes its declared default (the largest, if several
        # operations declare it): `query($n: Int = 100)` costs as `first: 100`.
        self.defaults: dict[str, int] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                for variable in definition.variable_definitions or ():
                    if isinstance(variable.default_value, IntValueNode):
                        name = variable.variable.name.value
                        self.defaults[name] = max(self.defaults.get(name, 0), int(variable.default_value.value))
        self.introspection = False

    def _fields(self, selection_set: SelectionSetNode | None, seen: frozenset = frozenset()) -> Iterator[tuple]:
        """(field, fragments spread on the way) for the direct fields of a selection set."""
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                yield selection, seen
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:  # a cycle is refused by validation anyway
                    yield from self._fields(fragment.selection_set, seen | {name})

    def depth(self, selection_set, seen=frozenset()) -> int:
        deepest = 0
        for field, spread in self._fields(selection_set, seen):
            if field.name.value in INTROSPECTION_FIELDS:
                self.introspection = True
                continue  # the introspection query is deep by nature; it is switched on or off as a whole
            deepest = max(deepest, 1 + self.depth(field.selection_set, spread))
        return deepest

    def _first(self, field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(int(value.value), 0)
            if isinstance(value, VariableNode):
                name = value.name.value
                given = self.variables[name] if name in self.variables else self.defaults.get(name)
                return given if isinstance(given, int) and given > 0 else DEFAULT_PAGE_SIZE
            return DEFAULT_PAGE_SIZE
        selections = field.selection_set.selections if field.selection_set else ()
        if any(isinstance(s, FieldNode) and s.name.value in ("edges", "nodes") for s in selections):
            return DEFAULT_PAGE_SIZE  # a connection asked without `first` answers a default page
        return 1

    def cost(self, selection_set, seen=frozenset()) -> int:
        total = 0
        for field, spread in self._fields(selection_set, seen):
            name = field.name.value
            if name.startswith("__"):
                continue
            total += FIELD_COST.get(name, 1) + self._first(field) * self.cost(field.selection_set, spread)
        return total


def _refusal(error: type[app.ApplicationError], message: str, details: dict) -> GraphQLError:
    return GraphQLError(message, extensions=extensions_for(error.code, error.status, details))


def check(document, variables: dict | None, operation_name: str | None = None) -> None:
    """Raises the GraphQL error refusing `document`, if any."""
    walk = _Walk(document, variables)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name] or operations
    for operation in operations:
        depth = walk.depth(operation.selection_set)
        if depth > settings.VIBEBOX_GRAPHQL_MAX_DEPTH:
            limit = settings.VIBEBOX_GRAPHQL_MAX_DEPTH
            raise _refusal(
                app.GraphqlTooDeep,
                f"The query is {depth} levels deep; at most {limit}.",
                {"depth": depth, "limit": limit},
            )
        if operation.operation == OperationType.MUTATION:
            writes = sum(1 for _ in walk._fields(operation.selection_set))
            if writes > settings.VIBEBOX_GRAPHQL_MAX_MUTATIONS:
                limit = settings.VIBEBOX_GRAPHQL_MAX_MUTATIONS
                raise _refusal(
                    app.GraphqlTooComplex,
                    f"The document carries {writes} mutations; at most {limit} (send the others in more requests).",
                    {"mutations": writes, "limit": limit},
                )
        cost = walk.cost(operation.selection_set)
        if cost > settings.VIBEBOX_GRAPHQL_MAX_COST:
            limit = settings.VIBEBOX_GRAPHQL_MAX_COST
            raise _refusal(
                app.GraphqlTooComplex,
                f"The query would cost {cost}; at most {limit} (ask for smaller pages or fewer fields).",
                {"cost": cost, "limit": limit},
            )
    if walk.introspection and not settings.VIBEBOX_GRAPHQL_INTROSPECTION:
        raise _refusal(app.GraphqlIntrospectionDisabled, "Introspection is disabled on this server.", {})


class Limits(SchemaExtension):
    """Checks the parsed, validated document with its variables before it executes (raising here
    stops execution, for queries and subscriptions alike)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            check(context.graphql_document, context.variables, context.operation_name)
        yield
