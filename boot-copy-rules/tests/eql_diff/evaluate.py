#!/usr/bin/env python3
"""Events near each rule's decision boundary, judged with Elasticsearch's semantics.

Usage: evaluate.py RULE.toml...

For every rule file: parse its query with Elastic's `eql` package (Elasticsearch syntax, the
hooks of normalize.py recording `~` and `?`), generate events from the rule's own literals, and
judge each with the evaluator below. Output, one JSON object per line:

    {"rule": "FILE NAME", "event": {"dotted.field": VALUE, ...}, "match": BOOL}

The evaluator follows Elasticsearch's execution of EQL (docs/SEMANTICS.md), not the eql
package's own Python engine (`eql.PythonEngine`, the language's reference implementation), which
differs from Elasticsearch on these points (each checked against eql 1.0.1), followed here as
Elasticsearch does:

- `==` is case-sensitive (the package: `a == "CP"` matches `cp`).
- `like~`, `:`, `in~` and the `~` functions fold ASCII letters only (the package folds Unicode:
  `like~ "é"` matches `É`, `in~ ("k")` matches the Kelvin sign).
- A comparison on a missing field is false and `not` is two-valued (the package propagates
  null: `not a == "x"` does not match an event without `a`; in Elasticsearch it is a negated
  term query and does).
- Arrays match when any element does (the package: `a == "x"` does not match `["x", "y"]`).
- `regex` is a Lucene RegExp over the whole value, Lucene syntax (`^`/`$` literal, `@`, `#`,
  `"..."`, ranges not folded by `regex~`); the package uses Python's `re` syntax. Translated
  here by `lucene_to_python`, checked by `self_test()` on cases from Lucene's RegExp source.
- A string function whose second argument is a field runs as a script over doc values: each
  field's first (least) value.

A backslash in a wildcard pattern is an ordinary character in both.
"""
import json
import random
import re
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import normalize  # noqa: E402  (installs the ~ / ? hooks on the eql parser)

import eql  # noqa: E402
import eql.ast as ast  # noqa: E402
import eql.parser as parser  # noqa: E402

LIST_FIELDS = {"process.args", "process.parent.args", "event.type", "event.category",
               "process.env_vars", "process.entry_leader.args", "process.session_leader.args",
               "process.group_leader.args", "auditd.data.a0", "auditd.data.a1"}


# --- Lucene RegExp -> Python re -----------------------------------------------------------------

class Unsupported(Exception):
    pass


def _fold(c, ci):
    """One pattern character as a Python class body, with its other ASCII case under regex~."""
    out = re.escape(c) if c not in "-]^\\" else "\\" + c
    if ci and c.isascii() and c.isalpha():
        other = c.swapcase()
        out += other
    return out


PRE = {"d": "0-9", "s": " \\t\\n\\r", "w": "a-zA-Z_0-9"}


def lucene_to_python(p, ci):
    """Translates a Lucene RegExp (flags ALL, minus & ~ <>) into an equivalent Python pattern."""
    out = []
    i = 0
    n = len(p)

    def atom_char(c):
        return "[" + _fold(c, ci) + "]"

    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise Unsupported("trailing backslash")
            d = p[i + 1]
            i += 2
            if d in "dsw":
                out.append("[" + PRE[d] + "]")
            elif d in "DSW":
                out.append("[^" + PRE[d.lower()] + "]")
            elif d.isascii() and d.isalpha():
                raise Unsupported("bad escape")
            else:
                out.append(atom_char(d))
        elif c == "[":
            j = i + 1
            neg = j < n and p[j] == "^"
            if neg:
                j += 1
            body = []
            first = True
            while j < n and (first or p[j] != "]"):
                first = False
                if p[j] == "\\" and j + 1 < n and p[j + 1] in "dDsSwW":
                    d = p[j + 1]
                    if d in "dsw":
                        body.append(PRE[d])
                    else:
                        raise Unsupported("negated class inside a class")
                    j += 2
                    continue
                if p[j] == "\\" and j + 1 < n and p[j + 1] == "\\":
                    body.append("\\\\")
                    j += 2
                    continue
                if p[j] == "\\":
                    j += 1
                ch = p[j]
                j += 1
                if j + 1 < n and p[j] == "-" and p[j + 1] != "]":
                    j += 1
                    if p[j] == "\\":
                        j += 1
                    hi = p[j]
                    j += 1
                    # A range is not folded.
                    body.append("\\" + ch + "-\\" + hi if not ch.isalnum() or not hi.isalnum()
                                else ch + "-" + hi)
                else:
                    body.append(_fold(ch, ci))
            if j >= n:
                raise Unsupported("unterminated class")
            out.append("[" + ("^" if neg else "") + "".join(body) + "]")
            i = j + 1
        elif c == '"':
            j = p.index('"', i + 1)
            out.append("(?:" + "".join(atom_char(x) for x in p[i + 1:j]) + ")")
            i = j + 1
        elif c == ".":
            out.append(".")
            i += 1
        elif c == "@":
            out.append(".*")
            i += 1
        elif c == "#":
            out.append("(?!)")
            i += 1
        elif c in "&~<":
            raise Unsupported("operator " + c)
        elif c in "()|*+?":
            out.append(c)
            i += 1
        elif c == "{":
            j = p.index("}", i)
            out.append(p[i:j + 1])
            i = j + 1
        else:
            out.append(atom_char(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def lucene_match(p, ci, text):
    return lucene_to_python(p, ci).fullmatch(text) is not None


def self_test():
    """Lucene facts (RegExp's javadoc and source) the translation must reproduce."""
    cases = [
        ("abc", False, "abc", True), ("b", False, "abc", False), ("^abc$", False, "abc", False),
        ("^abc$", False, "^abc$", True), (".", False, "\n", True), ("a{2,3}", False, "aaaa", False),
        ("[^-]*", False, "a-c", False), (r"\w+", False, "a_Z9", True), (r"\s", False, "\t", True),
        ('"a.b"', False, "axb", False), ("@", False, "xyz", True), ("a#", False, "a", False),
        ("abc", True, "AbC", True), ("[abc]", True, "B", True), ("[a-c]", True, "B", False),
        ("[^a]", True, "A", False), ("[^a-z]", True, "A", True), ("é", True, "É", False),
        (r"\.[a-z0-9_\-][a-z0-9_\-\.]{1,254}", True, ".xY", False),
        (r"/var/run/\w+\.(pid|lock|reboot)", True, "/VAR/RUN/a.PID", True),
    ]
    for p, ci, text, want in cases:
        got = lucene_match(p, ci, text)
        assert got == want, "Lucene translation: %r ci=%s on %r: %s" % (p, ci, text, got)


# --- The evaluator --------------------------------------------------------------------------------

def values(event, name):
    v = event.get(name)
    if v is None:
        return []
    if isinstance(v, list):
        return [x for x in v if x is not None]
    return [v]


def fold(s):
    return s.translate(ASCII_LOWER)


ASCII_LOWER = {ord(c): ord(c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def wildcard_match(pattern, ci, s):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ci else 0)
    return re.fullmatch(rx, s, flags) is not None


def lit(node):
    if isinstance(node, ast.String):
        return node.value
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Boolean):
        return bool(node.value)
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.MathOperation) and node.operator == "-" and \
            isinstance(node.left, ast.Number) and node.left.value == 0:
        return -node.right.value
    raise Unsupported("literal " + type(node).__name__)


def field_name(node):
    return normalize.field_name(node)


def equals(v, c, ci):
    """A value against a constant, with Elasticsearch's keyword/number coercion."""
    if isinstance(v, bool) or isinstance(c, bool):
        if isinstance(v, bool) and isinstance(c, bool):
            return v == c
        if isinstance(v, bool) and isinstance(c, str):
            return c == ("true" if v else "false")
        return False
    if isinstance(v, str):
        if isinstance(c, str):
            return fold(v) == fold(c) if ci else v == c
        return v == str(c)
    if isinstance(c, str):
        try:
            return float(c.strip()) == v
        except ValueError:
            return False
    return v == c


def compare(op, v, c):
    if isinstance(v, bool) or isinstance(c, bool):
        return False
    if isinstance(v, str):
        c = str(c)
    elif isinstance(c, str):
        try:
            c = float(c.strip())
        except ValueError:
            return False
    return {"<": v < c, "<=": v <= c, ">": v > c, ">=": v >= c}[op]


class Rule:
    def __init__(self, path):
        self.path = path
        self.text = tomllib.loads(path.read_text())["rule"]["query"]
        normalize._CI.clear()
        normalize._OPTIONAL.clear()
        with parser.elasticsearch_syntax, parser.skip_optimizations:
            self.tree = eql.parse_query(self.text)
        self.ci = set(normalize._CI)
        self.root = self.tree.first.query

    def is_ci(self, node):
        return id(node) in self.ci

    def matches(self, event):
        return "process" in values(event, "event.category") and self.ev(self.root, event)

    def ev(self, n, e):
        if isinstance(n, ast.And):
            return all(self.ev(t, e) for t in n.terms)
        if isinstance(n, ast.Or):
            return any(self.ev(t, e) for t in n.terms)
        if isinstance(n, ast.Not):
            return not self.ev(n.term, e)
        if isinstance(n, ast.IsNull):
            return not values(e, field_name(n.expr))
        if isinstance(n, ast.IsNotNull):
            return bool(values(e, field_name(n.expr)))
        if isinstance(n, ast.Boolean):
            return bool(n.value)
        if isinstance(n, ast.Field):
            return any(v is True for v in values(e, field_name(n)))
        if isinstance(n, ast.InSet):
            ci = self.is_ci(n)
            consts = [lit(c) for c in n.container]
            return any(equals(v, c, ci) for v in values(e, field_name(n.expression))
                       for c in consts)
        if isinstance(n, ast.Comparison):
            return self.comparison(n, e)
        if isinstance(n, ast.FunctionCall):
            return self.call(n, e)
        raise Unsupported(type(n).__name__)

    def comparison(self, n, e):
        left, op, right = n.left, n.comparator, n.right
        if not isinstance(left, (ast.Field, ast.FunctionCall)):
            left, right = right, left
            op = normalize._MIRROR[op]
        if isinstance(left, ast.FunctionCall) and left.name == "length":
            c = lit(right)
            vals = [len(v.encode("utf-16-le")) // 2 for v in values(e, field_name(left.arguments[0]))
                    if isinstance(v, str)]
            if op == "!=":
                return not any(x == c for x in vals)
            if op == "==":
                return any(x == c for x in vals)
            return any(compare(op, x, c) for x in vals)
        c = lit(right)
        vals = values(e, field_name(left))
        if c is None:
            return bool(vals) if op == "!=" else not vals
        if op == "==":
            return any(equals(v, c, False) for v in vals)
        if op == "!=":
            return not any(equals(v, c, False) for v in vals)
        return any(compare(op, v, c) for v in vals)

    def call(self, n, e):
        name, args, ci = n.name, n.arguments, self.is_ci(n)
        vals = [v for v in values(e, field_name(args[0])) if isinstance(v, str)]
        if name == "wildcard":
            pats = [lit(a) for a in args[1:]]
            return any(wildcard_match(p, ci, v) for v in vals for p in pats)
        if name == "match":
            pats = [lit(a) for a in args[1:]]
            return any(lucene_match(p, ci, v) for v in vals for p in pats)
        test = {"startsWith": str.startswith, "endsWith": str.endswith,
                "stringContains": lambda a, b: b in a}[name]
        if isinstance(args[1], ast.Field):
            # A script over doc values: each field's first (least) value.
            others = [v for v in values(e, field_name(args[1])) if isinstance(v, str)]
            if not vals or not others:
                return False
            return test(min(vals, key=lambda s: s.encode()), min(others, key=lambda s: s.encode()))
        p = lit(args[1])
        if ci:
            return any(test(fold(v), fold(p)) for v in vals)
        return any(test(v, p) for v in vals)


# --- Event generation -----------------------------------------------------------------------------

def sample_regex(p, ci, rng):
    """A string the Lucene pattern matches, drawn from its Python translation's parse tree."""
    import re._parser as sre

    tree = sre.parse(lucene_to_python(p, ci).pattern, re.DOTALL)

    def gen(items):
        out = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "ANY":
                out.append(rng.choice("aZ9/._-"))
            elif name == "IN":
                out.append(pick_in(av))
            elif name == "NOT_LITERAL":
                out.append(rng.choice([c for c in "abxyZ019._/" if ord(c) != av]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                lo, hi, sub = av
                hi = min(hi, lo + 3)
                for _ in range(rng.randint(lo, hi)):
                    out.append(gen(sub))
            elif name == "SUBPATTERN":
                out.append(gen(av[-1]))
            elif name == "BRANCH":
                out.append(gen(rng.choice(av[1])))
            else:
                raise Unsupported(name)
        return "".join(out)

    def pick_in(items):
        pool = list("abcxyzABCXYZ0129 ._-/:\\")
        for op, av in items:
            if str(op) == "LITERAL":
                pool.append(chr(av))
            elif str(op) == "RANGE":
                pool.extend([chr(av[0]), chr(av[1]), chr((av[0] + av[1]) // 2)])
        rng.shuffle(pool)
        for c in pool:
            if re.fullmatch("[" + in_body(items) + "]", c, re.DOTALL):
                return c
        raise Unsupported("no sample for a class")

    def in_body(items):
        parts = []
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                parts.insert(0, "^")
            elif name == "LITERAL":
                parts.append(re.escape(chr(av)))
            elif name == "RANGE":
                parts.append(re.escape(chr(av[0])) + "-" + re.escape(chr(av[1])))
            elif name == "CATEGORY":
                parts.append({"CATEGORY_DIGIT": "0-9", "CATEGORY_SPACE": " \\t\\n\\r",
                              "CATEGORY_WORD": "a-zA-Z_0-9"}[str(av)])
            else:
                raise Unsupported(name)
        return "".join(parts)

    return gen(tree)


def fill(pattern, rng):
    return "".join(rng.choice(["", "x", "/a/"]) if c == "*" else "q" if c == "?" else c
                   for c in pattern)


def swapcase_ascii(s):
    return "".join(c.swapcase() if c.isascii() else c for c in s)


def near_miss(s):
    if not isinstance(s, str):
        return s + 1 if isinstance(s, int) and not isinstance(s, bool) else s
    if not s:
        return "x"
    return s[:-1] + ("y" if s[-1] != "y" else "z")


class Generator:
    """Walks a rule's condition, assigning field values that make each node true or false."""

    def __init__(self, rule, rng):
        self.rule = rule
        self.rng = rng

    def event(self):
        e = {"event.category": ["process"]}
        self.want(self.rule.root, True, e)
        return e

    def put(self, e, field, value):
        if value is None:
            e.pop(field, None)
        elif field in LIST_FIELDS:
            e.setdefault(field, [])
            if not isinstance(e[field], list):
                e[field] = [e[field]]
            e[field].append(value)
        else:
            e[field] = value

    def want(self, n, truth, e):
        rng = self.rng
        if isinstance(n, (ast.And, ast.Or)):
            terms = list(n.terms)
            all_needed = isinstance(n, ast.And) == truth
            if all_needed:
                for t in terms:
                    self.want(t, truth, e)
            else:
                self.want(rng.choice(terms), truth, e)
        elif isinstance(n, ast.Not):
            self.want(n.term, not truth, e)
        elif isinstance(n, (ast.IsNull, ast.IsNotNull)):
            present = isinstance(n, ast.IsNotNull) == truth
            f = field_name(n.expr)
            if present and f not in e:
                self.put(e, f, "/usr/bin/present")
            elif not present:
                e.pop(f, None)
        elif isinstance(n, ast.Field):
            self.put(e, field_name(n), truth)
        elif isinstance(n, ast.InSet):
            c = lit(rng.choice(n.container)) if n.container else "none"
            if self.rule.is_ci(n) and isinstance(c, str) and rng.random() < 0.5:
                c = swapcase_ascii(c)
            self.put(e, field_name(n.expression), c if truth else self.miss(c, e))
        elif isinstance(n, ast.Comparison):
            self.comparison(n, truth, e)
        elif isinstance(n, ast.FunctionCall):
            self.call(n, truth, e)

    def miss(self, c, e):
        return None if self.rng.random() < 0.3 else near_miss(c)

    def comparison(self, n, truth, e):
        left, op, right = n.left, n.comparator, n.right
        if not isinstance(left, (ast.Field, ast.FunctionCall)):
            left, right, op = right, left, normalize._MIRROR[op]
        c = lit(right)
        if isinstance(left, ast.FunctionCall):
            f = field_name(left.arguments[0])
            cur = e.get(f) if isinstance(e.get(f), str) else "a"
            length = c + 1 if (op in (">", ">=", "!=")) == truth else max(c - 1, 0)
            if op == "==" and truth:
                length = c
            self.put(e, f, (cur * (length // max(len(cur), 1) + 1))[:length])
            return
        f = field_name(left)
        if c is None:
            return
        if op in ("==", "!="):
            hit = (op == "==") == truth
            self.put(e, f, c if hit else self.miss(c, e))
        else:
            delta = {"<": -1, "<=": 0, ">": 1, ">=": 0}[op]
            if isinstance(c, (int, float)) and not isinstance(c, bool):
                self.put(e, f, c + delta if truth else c - delta - (1 if delta >= 0 else -1))

    def call(self, n, truth, e):
        rng = self.rng
        name, args, ci = n.name, n.arguments, self.rule.is_ci(n)
        f = field_name(args[0])
        if name in ("wildcard", "match"):
            p = lit(rng.choice(args[1:]))
            if name == "wildcard":
                v = fill(p, rng)
            else:
                v = sample_regex(p, ci, rng)
            if ci and rng.random() < 0.5:
                v = swapcase_ascii(v)
            self.put(e, f, v if truth else self.miss(v, e))
            return
        if isinstance(args[1], ast.Field):
            g = field_name(args[1])
            base = "/tmp/pkexec"
            if name == "startsWith":
                pair = (base + " --user", base)
            elif name == "endsWith":
                pair = ("x" + base, base)
            else:
                pair = ("a" + base + "b", base)
            self.put(e, f, pair[0])
            self.put(e, g, pair[1] if truth else near_miss(pair[1]))
            return
        p = lit(args[1])
        v = {"startsWith": p + "tail", "endsWith": "head" + p}.get(name, "a" + p + "b")
        if ci and rng.random() < 0.5:
            v = swapcase_ascii(v)
        self.put(e, f, v if truth else self.miss(v, e))


def mutations(event, rng):
    """Single-field edits of an event: removed, case-swapped, one character off."""
    out = []
    for f, v in event.items():
        removed = dict(event)
        del removed[f]
        out.append(removed)
        if isinstance(v, list):
            if v:
                k = rng.randrange(len(v))
                for change in (swapcase_ascii, near_miss):
                    if isinstance(v[k], str):
                        w = list(v)
                        w[k] = change(v[k])
                        out.append(dict(event, **{f: w}))
        elif isinstance(v, str):
            out.append(dict(event, **{f: swapcase_ascii(v)}))
            out.append(dict(event, **{f: near_miss(v)}))
    return out


def main():
    self_test()
    rng = random.Random(19)
    out = sys.stdout
    for path in sys.argv[1:]:
        rule = Rule(Path(path))
        gen = Generator(rule, rng)
        seen = set()
        events = []
        # Twelve walks, and more (up to 200) until three of them match: the walk picks `or`
        # branches at random and can undo an earlier choice on a single-valued field.
        matched = 0
        for walk in range(200):
            if walk >= 12 and matched >= 3:
                break
            base = gen.event()
            hit = rule.matches(base)
            matched += hit
            if walk >= 12 and not hit:
                continue
            events.append(base)
            events.extend(mutations(base, rng))
        for e in events:
            key = json.dumps(e, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            out.write(json.dumps({"rule": Path(path).name, "event": e,
                                  "match": rule.matches(e)}, ensure_ascii=False) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
