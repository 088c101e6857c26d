#!/usr/bin/env python3
"""Parse EQL queries with Elastic's `eql` package (Elasticsearch syntax) and print normalized trees.

Usage: normalize.py [--ecs-types FILE] [QUERIES.ndjson]

Input: NDJSON on stdin (or the file named), one JSON string per line: the query text. Output:
one JSON object per input line, in the same order:

    {"ok": TREE}                                   the query parsed
    {"error": "message", "line": L, "column": C}   it was rejected (1-based position)

TREE is the common shape that `tests/eql_diff.rs` also produces from the Rust engine's AST:

    {"event": "process", "where": EXPR}
    EXPR  = {"and": [EXPR, ...]} | {"or": [EXPR, ...]}      (nested and/or flattened)
          | {"not": EXPR}                                    (double negation removed)
          | {"cmp": OP, "left": VALUE, "right": VALUE}       (a literal on the left is moved
                                                              right and the operator mirrored)
          | {"in": VALUE, "values": [VALUE, ...], "ci": BOOL}
          | {"wildcard": VALUE, "patterns": [VALUE, ...], "ci": BOOL}
          | VALUE
    VALUE = {"field": "a.b.c", "optional": BOOL} | {"lit": STRING|BOOL|null} | {"num": FLOAT}
          | {"call": NAME, "ci": BOOL, "args": [VALUE|EXPR, ...]}

`f == null` / `f != null` appear as comparisons with {"lit": null}. `like`, `like~`, `:` and
`wildcard()` all become "wildcard" (ci: like~, `:` and wildcard~). The package's AST drops the
`~` of `in~`, `like~` and `func~(...)` and the `?` of optional fields, so this script wraps the
parser's tree walker to record them beside the nodes it builds.

The package's optimizer is switched off so the tree is the parse as written.

With --ecs-types (a `field<TAB>type` table of ECS field types, the one the engine checks
queries against), the package gets the same knowledge as a schema, so that both refuse an ECS
field compared with a constant of the wrong type (as Elasticsearch's verifier does with the
index mapping) and both accept any field ECS does not define. The mapping to the package's
types: keyword-like -> string, numeric -> number, boolean -> boolean, ip -> string, date ->
mixed (a string or a number), object/nested/flattened/geo_point -> an object (not comparable).
"""
import json
import sys

import eql
import eql.ast as ast
import eql.parser as parser

# Nodes built by the walker that carry a flag the AST itself does not keep, by id(node).
# The node is stored too so that an id reused after garbage collection cannot match.
_CI = {}
_OPTIONAL = {}


def _mark(table, node):
    table[id(node)] = node


def _marked(table, node):
    return table.get(id(node)) is node


_Walker = parser.LarkToEQL
_orig_string_predicate = _Walker.string_predicate
_orig_in_set = _Walker.in_set
_orig_function_call = _Walker.function_call
_orig_field = _Walker.field


def _string_predicate(self, node):
    info = _orig_string_predicate(self, node)
    if str(node["STRING_PREDICATE"]) in ("like~", ":", "regex~"):
        _mark(_CI, info.node)
    return info


def _in_set(self, node):
    info = _orig_in_set(self, node)
    if str(node.get("IN")) == "in~":
        _mark(_CI, info.node)
    return info


def _function_call(self, node, prev_node=None, prev_arg=None):
    info = _orig_function_call(self, node, prev_node, prev_arg)
    if node.data == "method":
        name = str(node["method_name"]["METHOD_START"])[1:-1]
    else:
        name = str(node.children[0])
    if name.endswith("~"):
        _mark(_CI, info.node)
    return info


def _field(self, node):
    info = _orig_field(self, node)
    if str(node.children[-1]).startswith("?"):
        _mark(_OPTIONAL, info.node)
    return info


_Walker.string_predicate = _string_predicate
_Walker.in_set = _in_set
_Walker.function_call = _function_call
_Walker.field = _field

_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _is_literal(value):
    return "lit" in value or "num" in value


def field_name(node):
    parts = [str(node.base)]
    for p in node.path:
        parts.append("[%d]" % p if isinstance(p, int) else "." + str(p))
    return "".join(parts)


def norm(node):
    """Normalize one eql AST node into the common JSON shape."""
    if isinstance(node, ast.PipedQuery):
        first = norm(node.first)
        if node.pipes:
            return {"query": first, "pipes": [type(p).__name__ for p in node.pipes]}
        return first
    if isinstance(node, ast.EventQuery):
        return {"event": node.event_type, "where": norm(node.query)}
    if isinstance(node, (ast.Sequence, ast.Sample, ast.Join)):
        return {"unsupported": type(node).__name__}
    if isinstance(node, (ast.And, ast.Or)):
        key = "and" if isinstance(node, ast.And) else "or"
        terms = []
        for term in node.terms:
            t = norm(term)
            if isinstance(t, dict) and list(t.keys()) == [key]:
                terms.extend(t[key])
            else:
                terms.append(t)
        return {key: terms}
    if isinstance(node, ast.Not):
        inner = norm(node.term)
        if isinstance(inner, dict) and list(inner.keys()) == ["not"]:
            return inner["not"]
        return {"not": inner}
    if isinstance(node, ast.Comparison):
        return comparison(node.comparator, norm(node.left), norm(node.right))
    if isinstance(node, ast.IsNull):
        return comparison("==", norm(node.expr), {"lit": None})
    if isinstance(node, ast.IsNotNull):
        return comparison("!=", norm(node.expr), {"lit": None})
    if isinstance(node, ast.InSet):
        return {"in": norm(node.expression), "values": [norm(v) for v in node.container],
                "ci": _marked(_CI, node)}
    if isinstance(node, ast.FunctionCall):
        args = [norm(a) for a in node.arguments]
        if node.name == "wildcard" and args:
            return {"wildcard": args[0], "patterns": args[1:], "ci": _marked(_CI, node)}
        return {"call": node.name, "ci": _marked(_CI, node), "args": args}
    if isinstance(node, ast.Field):
        return {"field": field_name(node), "optional": _marked(_OPTIONAL, node)}
    if isinstance(node, ast.Null):
        return {"lit": None}
    if isinstance(node, ast.Boolean):
        return {"lit": bool(node.value)}
    if isinstance(node, ast.Number):
        return {"num": number(float(node.value))}
    if isinstance(node, ast.String):
        return {"lit": node.value}
    if isinstance(node, ast.MathOperation):
        left, right = norm(node.left), norm(node.right)
        # The package parses a negative number `-2` as `0 - 2`; fold it back.
        if (node.operator == "-" and isinstance(node.left, ast.Number) and node.left.value == 0
                and "num" in right):
            value = right["num"]
            return {"num": number(-float("inf" if value == "inf" else value))}
        return {"math": node.operator, "left": left, "right": right}
    return {"unsupported": type(node).__name__}


def number(value):
    """JSON has no infinities: those (from literals like 1e400) become strings."""
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def comparison(op, left, right):
    if _is_literal(left) and not _is_literal(right):
        left, right, op = right, left, _MIRROR[op]
    return {"cmp": op, "left": left, "right": right}


STRING_TYPES = {"keyword", "wildcard", "constant_keyword", "text", "match_only_text", "ip"}
NUMBER_TYPES = {"long", "integer", "short", "byte", "float", "double", "half_float", "scaled_float",
                "unsigned_long"}
# ECS event categories: each is an event type the schema admits (all with the same fields).
EVENT_TYPES = ["api", "authentication", "configuration", "database", "driver", "email", "file",
               "host", "iam", "intrusion_detection", "library", "malware", "network", "package",
               "process", "registry", "session", "threat", "vulnerability", "web"]


def ecs_schema(path):
    """An eql Schema from a `field<TAB>type` table; fields ECS does not define stay allowed."""
    from eql.schema import Schema

    leaves = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or "\t" not in line:
                continue
            name, kind = line.rstrip("\n").split("\t")[:2]
            leaves[name] = kind
    root = {}
    # Shorter names first, so that a leaf (`process.command_line`) wins over its multi-fields
    # (`process.command_line.text`), which then stay unknown (allowed).
    for name in sorted(leaves, key=lambda n: n.count(".")):
        kind = leaves[name]
        parts = name.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                node = None
                break
            node = child
        if node is None or parts[-1] in node:
            continue
        if kind in STRING_TYPES:
            node[parts[-1]] = "string"
        elif kind in NUMBER_TYPES:
            node[parts[-1]] = "number"
        elif kind == "boolean":
            node[parts[-1]] = "boolean"
        elif kind == "date":
            node[parts[-1]] = "mixed"
        else:
            # An object: not comparable. A placeholder member makes it a non-empty object (an
            # empty one would mean "anything"); its real sub-fields are added beside it.
            node[parts[-1]] = {"_composite": "mixed"}
    schema = Schema({event: root for event in EVENT_TYPES}, allow_missing=True)
    # The parser derives schemas from this one for every query (flattened, per event type), and
    # each construction re-validates all of ECS. This one is valid, so the derived ones are.
    Schema.validate_schema = lambda self: True
    return schema


SCHEMA = None


def parse(text):
    _CI.clear()
    _OPTIONAL.clear()
    try:
        with parser.elasticsearch_syntax, parser.skip_optimizations:
            if SCHEMA is not None:
                with SCHEMA:
                    tree = eql.parse_query(text)
            else:
                tree = eql.parse_query(text)
    except eql.EqlParseError as e:
        return {"error": e.error_msg, "line": e.line + 1, "column": e.column + 1}
    except eql.EqlError as e:
        return {"error": str(e)}
    except RecursionError:
        return {"error": "recursion limit"}
    except Exception as e:  # noqa: B902 - a bug in the package rejects the query; say so
        return {"error": "eql package failure: %s: %s" % (type(e).__name__, e)}
    result = {"ok": norm(tree)}
    try:
        json.dumps(result, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # `\u{D800}` and the like: a lone surrogate has no UTF-8 form, so no Rust string holds it.
        return {"error": "string literal holds a lone surrogate"}
    return result


def main():
    global SCHEMA
    args = sys.argv[1:]
    if args[:1] == ["--ecs-types"]:
        SCHEMA = ecs_schema(args[1])
        args = args[2:]
    source = open(args[0], encoding="utf-8") if args else sys.stdin
    out = sys.stdout
    for line in source:
        if not line.strip():
            continue
        text = json.loads(line)
        out.write(json.dumps(parse(text), ensure_ascii=False, sort_keys=True) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
