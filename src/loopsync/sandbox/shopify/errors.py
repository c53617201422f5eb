"""Errors in Shopify's words: graphql-core finds them, this module phrases them.

Shopify's Admin API runs graphql-ruby, whose messages and ``extensions.code``
values differ from graphql-core's ("Field 'nmae' doesn't exist on type 'Order'",
code ``undefinedField``). A client that works against the sandbox must also
work against Shopify, so the sandbox answers a bad document the way Shopify does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


def _shopify_error(error: GraphQLError, chain: list[AstNode], node: AstNode | None) -> dict[str, Any]:
    msg = error.message
    ext: dict[str, Any]
    m = re.match(r"Cannot query field '(.+?)' on type '(.+?)'\.", msg)
    if m:
        msg = f"Field '{m[1]}' doesn't exist on type '{m[2]}'"
        ext = {"code": "undefinedField", "typeName": m[2], "fieldName": m[1]}
    elif m := re.match(r"Unknown argument '(.+?)' on field '(?:.+?)\.(.+?)'\.", msg):
        msg = f"Field '{m[2]}' doesn't accept argument '{m[1]}'"
        ext = {"code": "argumentNotAccepted", "name": m[2], "typeName": "Field", "argumentName": m[1]}
    elif m := re.match(r"Unknown argument '(.+?)' on directive '@(.+?)'\.", msg):
        msg = f"Directive '{m[2]}' doesn't accept argument '{m[1]}'"
        ext = {"code": "argumentNotAccepted", "name": m[2], "typeName": "Directive", "argumentName": m[1]}
    elif m := re.match(r"Field '(.+?)' argument '(.+?)' of type '(.+?)' is required", msg):
        msg = f"Field '{m[1]}' is missing required arguments: {m[2]}"
        ext = {"code": "missingRequiredArguments", "className": "Field", "name": m[1], "arguments": m[2]}
    elif m := re.match(r"Field '(.+?)' of required type '(.+?)' was not provided\.", msg):
        input_type = re.sub(r"[!\[\]]", "", str(_input_type_hint(msg, error)))
        msg = f"Argument '{m[1]}' on InputObject '{input_type}' is required. Expected type {m[2]}"
        ext = {"code": "missingRequiredInputObjectAttribute", "argumentName": m[1], "argumentType": m[2],
               "inputObjectType": input_type}
    elif m := re.match(r"Field '(.+?)' is not defined by type '(.+?)'\.", msg):
        msg = f"InputObject '{m[2]}' doesn't accept argument '{m[1]}'"
        ext = {"code": "argumentNotAccepted", "name": m[2], "typeName": "InputObject", "argumentName": m[1]}
    elif m := re.match(r"Unknown type '(.+?)'\.", msg):
        if _nearest(chain, VariableDefinitionNode) is not None:
            var = _nearest(chain, VariableDefinitionNode).variable.name.value
            msg = f"{m[1]} isn't a defined input type (on ${var})"
            ext = {"code": "variableRequiresValidType", "typeName": m[1], "variableName": var}
        else:
            msg = f"No such type {m[1]}, so it can't be a fragment condition"
            ext = {"code": "undefinedType", "typeName": m[1]}
    elif m := re.match(r"Variable '\$(.+?)' of type '(.+?)' used in position expecting type '(.+?)'\.", msg):
        argument = _nearest(chain, ArgumentNode)
        arg_name = argument.name.value if argument else ""
        msg = f"Type mismatch on variable ${m[1]} and argument {arg_name} ({m[2]} / {m[3]})"
        ext = {"code": "variableMismatch", "variableName": m[1], "typeName": m[2], "argumentName": arg_name,
               "errorMessage": "Type mismatch"}
    elif m := re.match(r"Variable '\$(.+?)' is not defined(?: by operation '(.+?)')?\.", msg):
        op = _nearest(chain, OperationDefinitionNode)
        op_name = op.name.value if op and op.name else "anonymous query"
        msg = f"Variable ${m[1]} is used by {op_name} but not declared"
        ext = {"code": "variableNotDefined", "variableName": m[1]}
    elif m := re.match(r"Variable '\$(.+?)' is never used(?: in operation '(.+?)')?\.", msg):
        op = _nearest(chain, OperationDefinitionNode)
        op_name = op.name.value if op and op.name else "anonymous query"
        msg = f"Variable ${m[1]} is declared by {op_name} but not used"
        ext = {"code": "variableNotUsed", "variableName": m[1]}
    elif m := re.match(r"Field '(.+?)' of type '(.+?)' must have a selection of subfields", msg):
        msg = (f"Field must have selections (field '{m[1]}' returns {m[2]} but has no selections. "
               f"Did you mean '{m[1]} {{ ... }}'?)")
        ext = {"code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": m[2]}
    elif m := re.match(r"Field '(.+?)' must not have a selection since type '(.+?)' has no subfields", msg):
        msg = f"Selections can't be made on scalars (field '{m[1]}' returns {m[2]} but has selections [...])"
        ext = {"code": "selectionMismatch", "nodeName": f"field '{m[1]}'", "typeName": m[2]}
    elif (argument := _nearest(chain, ArgumentNode)) is not None and node is not None and not isinstance(
            node, FieldNode):
        # ValuesOfCorrectTypeRule: a literal of the wrong type.
        field_node = _nearest(chain, FieldNode)
        owner = field_node.name.value if field_node else ""
        expected = re.search(r"type '(.+?)'", msg) or re.match(r"(\w+) cannot represent", msg)
        expected_type = expected[1] if expected else "?"
        msg = (f"Argument '{argument.name.value}' on Field '{owner}' has an invalid value "
               f"({print_ast(argument.value)}). Expected type '{expected_type}'.")
        ext = {"code": "argumentLiteralsIncompatible", "typeName": "Field", "argumentName": argument.name.value}
    else:
        # GUESS: rules with no mapping keep graphql-core's wording under a generic code.
        ext = {"code": "validationError"}
    out: dict[str, Any] = {"message": msg}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["path"] = _path(chain, node) if node is not None else []
    out["extensions"] = ext
    return out


def _input_type_hint(_msg: str, error: GraphQLError) -> str:
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
