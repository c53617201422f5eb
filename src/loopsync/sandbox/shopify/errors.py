"""Errors in Shopify's words: graphql-core finds them, this module phrases them.

Shopify's Admin API runs graphql-ruby, whose messages and ``extensions.code``
values differ from graphql-core's ("Field 'nmae' doesn't exist on type 'Order'",
code ``undefinedField``). A client that works against the sandbox must also
work against Shopify, so the sandbox answers a bad document the way Shopify does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    VariableDefinitionNode,
    Visitor,
    print_ast,
    visit,
)
from graphql import Node as AstNode

# --- validation errors in Shopify's (graphql-ruby's) words --------------------------------------


class _Ancestors(Visitor):
    def __init__(self, wanted: set[int]) -> None:
        super().__init__()
        self.wanted = wanted
        self.found: dict[int, list[AstNode]] = {}

    def enter(self, node, key, parent, path, ancestors):
        if id(node) in self.wanted:
            self.found[id(node)] = [a for a in ancestors if isinstance(a, AstNode)] + (
                [parent] if isinstance(parent, AstNode) else [])


def _path(chain: list[AstNode], node: AstNode) -> list[str]:
    out: list[str] = []
    for item in [*chain, node]:
        if isinstance(item, OperationDefinitionNode):
            op = item.operation.value
            out.append(f"{op} {item.name.value}" if item.name else op)
        elif isinstance(item, FragmentDefinitionNode):
            out.append(f"fragment {item.name.value}")
        elif isinstance(item, FieldNode | ArgumentNode | ObjectFieldNode):
            out.append(item.name.value)
        elif isinstance(item, InlineFragmentNode):
            out.append(f"... on {item.type_condition.name.value}" if item.type_condition else "...")
    return out


def _nearest(chain: list[AstNode], kind: type) -> Any:
    return next((a for a in reversed(chain) if isinstance(a, kind)), None)


# Each wording turns a graphql-core message (matched by its pattern) into graphql-ruby's message
# and extensions. They are tried in order; the first that matches wins.
_Wording = Callable[[re.Match[str], GraphQLError, list[AstNode]], tuple[str, dict[str, Any]]]
_WORDINGS: list[tuple[re.Pattern[str], _Wording]] = []


def _wording(pattern: str) -> Callable[[_Wording], _Wording]:
    def register(fn: _Wording) -> _Wording:
        _WORDINGS.append((re.compile(pattern), fn))
        return fn

    return register


@_wording(r"Cannot query field '(.+?)' on type '(.+?)'\.")
def _undefined_field(m, _error, _chain):
    return f"Field '{m[1]}' doesn't exist on type '{m[2]}'", {
        "code": "undefinedField", "typeName": m[2], "fieldName": m[1]}


@_wording(r"Unknown argument '(.+?)' on field '(?:.+?)\.(.+?)'\.")
def _field_argument_not_accepted(m, _error, _chain):
    return f"Field '{m[2]}' doesn't accept argument '{m[1]}'", {
        "code": "argumentNotAccepted", "name": m[2], "typeName": "Field", "argumentName": m[1]}


@_wording(r"Unknown argument '(.+?)' on directive '@(.+?)'\.")
def _directive_argument_not_accepted(m, _error, _chain):
    return f"Directive '{m[2]}' doesn't accept argument '{m[1]}'", {
        "code": "argumentNotAccepted", "name": m[2], "typeName": "Directive", "argumentName": m[1]}


@_wording(r"Field '(.+?)' argument '(.+?)' of type '(.+?)' is required")
def _missing_argument(m, _error, _chain):
    return f"Field '{m[1]}' is missing required arguments: {m[2]}", {
        "code": "missingRequiredArguments", "className": "Field", "name": m[1], "arguments": m[2]}


@_wording(r"Field '(.+?)' of required type '(.+?)' was not provided\.")
def _missing_input_field(m, error, _chain):
    input_type = re.sub(r"[!\[\]]", "", str(_input_type_hint(error)))
    return f"Argument '{m[1]}' on InputObject '{input_type}' is required. Expected type {m[2]}", {
        "code": "missingRequiredInputObjectAttribute", "argumentName": m[1], "argumentType": m[2],
        "inputObjectType": input_type}


@_wording(r"Field '(.+?)' is not defined by type '(.+?)'\.")
def _input_field_not_accepted(m, _error, _chain):
    return f"InputObject '{m[2]}' doesn't accept argument '{m[1]}'", {
        "code": "argumentNotAccepted", "name": m[2], "typeName": "InputObject", "argumentName": m[1]}


@_wording(r"Unknown type '(.+?)'\.")
def _unknown_type(m, _error, chain):
    variable = _nearest(chain, VariableDefinitionNode)
    if variable is not None:
        var = variable.variable.name.value
        return f"{m[1]} isn't a defined input type (on ${var})", {
            "code": "variableRequiresValidType", "typeName": m[1], "variableName": var}
    return f"No such type {m[1]}, so it can't be a fragment condition", {"code": "undefinedType", "typeName": m[1]}


@_wording(r"Variable '\$(.+?)' of type '(.+?)' used in position expecting type '(.+?)'\.")
def _variable_mismatch(m, _error, chain):
    argument = _nearest(chain, ArgumentNode)
    arg_name = argument.name.value if argument else ""
    return f"Type mismatch on variable ${m[1]} and argument {arg_name} ({m[2]} / {m[3]})", {
        "code": "variableMismatch", "variableName": m[1], "typeName": m[2], "argumentName": arg_name,
        "errorMessage": "Type mismatch"}


def _operation_label(chain: list[AstNode]) -> str:
    op = _nearest(chain, OperationDefinitionNode)
    return op.name.value if op and op.name else "anonymous query"


@_wording(r"Variable '\$(.+?)' is not defined(?: by operation '(.+?)')?\.")
def _variable_not_defined(m, _error, chain):
    return f"Variable ${m[1]} is used by {_operation_label(chain)} but not declared", {
        "code": "variableNotDefined", "variableName": m[1]}


@_wording(r"Variable '\$(.+?)' is never used(?: in operation '(.+?)')?\.")
def _variable_not_used(m, _error, chain):
    return f"Variable ${m[1]} is declared by {_operation_label(chain)} but not used", {
        "code": "variableNotUsed", "variableName": m[1]}


@_wording(r"Field '(.+?)' of type '(.+?)' must have a selection of subfields")
def _selection_missing(m, _error, _chain):
    return (f"Field must have selections (field '{m[1]}' returns {m[2]} but has no selections. "
            f"Did you mean '{m[1]} {{ ... }}'?)"), {
        "code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": m[2]}


@_wording(r"Field '(.+?)' must not have a selection since type '(.+?)' has no subfields")
def _selection_on_scalar(m, _error, _chain):
    return f"Selections can't be made on scalars (field '{m[1]}' returns {m[2]} but has selections [...])", {
        "code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": m[2]}


def _shopify_wording(error: GraphQLError, chain: list[AstNode], node: AstNode | None) -> tuple[str, dict[str, Any]]:
    msg = error.message
    for pattern, wording in _WORDINGS:
        m = pattern.match(msg)
        if m:
            return wording(m, error, chain)
    argument = _nearest(chain, ArgumentNode)
    if argument is not None and node is not None and not isinstance(node, FieldNode):
        # ValuesOfCorrectTypeRule: a literal of the wrong type.
        field_node = _nearest(chain, FieldNode)
        owner = field_node.name.value if field_node else ""
        expected = re.search(r"type '(.+?)'", msg) or re.match(r"(\w+) cannot represent", msg)
        expected_type = expected[1] if expected else "?"
        return (f"Argument '{argument.name.value}' on Field '{owner}' has an invalid value "
                f"({print_ast(argument.value)}). Expected type '{expected_type}'."), {
            "code": "argumentLiteralsIncompatible", "typeName": "Field", "argumentName": argument.name.value}
    # GUESS: rules with no mapping keep graphql-core's wording under a generic code.
    return msg, {"code": "validationError"}


def _shopify_error(error: GraphQLError, chain: list[AstNode], node: AstNode | None) -> dict[str, Any]:
    msg, ext = _shopify_wording(error, chain, node)
    out: dict[str, Any] = {"message": msg}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["path"] = _path(chain, node) if node is not None else []
    out["extensions"] = ext
    return out


def _input_type_hint(error: GraphQLError) -> str:
    m = re.search(r"'([A-Za-z0-9_]+Input)'", error.message)
    return m[1] if m else "InputObject"


def shopify_validation_errors(document: DocumentNode, errors: Sequence[GraphQLError]) -> list[dict[str, Any]]:
    targets = {id(e.nodes[-1]): e.nodes[-1] for e in errors if e.nodes}
    finder = _Ancestors(set(targets))
    visit(document, finder)
    formatted = [
        _shopify_error(e, finder.found.get(id(e.nodes[-1]), []) if e.nodes else [], e.nodes[-1] if e.nodes else None)
        for e in errors
    ]
    # graphql-ruby names every missing argument of a field in one error.
    merged: list[dict[str, Any]] = []
    for err in formatted:
        ext = err["extensions"]
        prior = next((m for m in merged if ext.get("code") == "missingRequiredArguments"
                      and m["extensions"].get("code") == "missingRequiredArguments"
                      and m.get("locations") == err.get("locations")), None)
        if prior is not None:
            prior["extensions"]["arguments"] += f", {ext['arguments']}"
            prior["message"] += f", {ext['arguments']}"
        else:
            merged.append(err)
    return merged


def variable_errors(operation: OperationDefinitionNode, errors: Sequence[GraphQLError],
                     variables: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        m = re.match(r"Variable '\$(.+?)'", error.message)
        name = m[1] if m else ""
        definition = next((d for d in operation.variable_definitions if d.variable.name.value == name), None)
        type_text = print_ast(definition.type) if definition else "?"
        explanation = error.message.split(";", 1)[-1].strip() if ";" in error.message else error.message
        if "was not provided" in error.message or (name in variables and variables[name] is None):
            explanation = "Expected value to not be null"
        entry: dict[str, Any] = {"message": f"Variable ${name} of type {type_text} was provided invalid value"}
        if definition is not None and definition.loc is not None:
            entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in (error.locations or [])]
        entry["extensions"] = {"value": variables.get(name),
                               "problems": [{"path": [], "explanation": explanation}]}
        out.append(entry)
    return out




def syntax_error(exc: GraphQLSyntaxError) -> dict[str, Any]:
    loc = exc.locations[0] if exc.locations else None
    found = re.search(r"found (.+?)\.?$", exc.message)
    token = found[1].strip("'") if found else "end of file"
    # GUESS: graphql-ruby's parse-error wording, with graphql-core's token description.
    where = f" at [{loc.line}, {loc.column}]" if loc else ""
    out: dict[str, Any] = {"message": f'Parse error on "{token}"{where}'}
    if loc:
        out["locations"] = [{"line": loc.line, "column": loc.column}]
    return out


def execution_error(error: GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    if error.extensions:
        out["extensions"] = dict(error.extensions)
    return out
