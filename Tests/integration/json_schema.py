#!/usr/bin/env python3
"""Validates one walctl --json output against its section of docs/json.md.

    json_schema.py docs/json.md SECTION OUTPUT_FILE

docs/json.md holds, per document, a line `<!-- schema: SECTION -->` followed by a Markdown table
`| key | type | meaning |`, and per shared type a line `<!-- schema-type: Name -->` with the same
table. A key is a path: `timelines` (a member), `timelines[].gaps` (a member of each element of the
array `timelines`), `lastArchived.name` (a member of the object `lastArchived`). Types:

    int, number (int or float), bool, string, lsn ("X/Y" in hex), time (ISO 8601, UTC, microseconds:
    2026-11-30T10:15:00.123456+00:00), crc (8 lower-case hex digits), string or null, object, array of T, Name (a
    schema-type), document NAME (another section's document, embedded), const N (formatVersion),
    and `, optional` (the key may be absent).

Fails (exit 1, one line per problem) on: more or less than one JSON document, an escaped slash,
an undocumented key, a missing key, a wrong type.
"""
import json
import re
import sys

BASE = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "string or null": lambda v: v is None or isinstance(v, str),
    "lsn": lambda v: isinstance(v, str) and re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", v) is not None,
    "time": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", v) is not None,
    "crc": lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{8}", v) is not None,
}


def parse_doc(path):
    """{section: {key: (type, optional)}}, {type name: {key: (type, optional)}}"""
    sections, types = {}, {}
    current = None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        m = re.match(r"\s*<!-- schema(-type)?: ([\w-]+) -->", line)
        if m:
            current = {}
            (types if m.group(1) else sections)[m.group(2)] = current
            continue
        if current is None:
            continue
        if not line.startswith("|"):
            if line.strip() == "" and current:
                current = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("key", "") or set(cells[0]) <= set("-: "):
            continue
        key = cells[0].strip("`")
        t = cells[1]
        optional = t.endswith(", optional")
        if optional:
            t = t[: -len(", optional")]
        current[key] = (t.strip(), optional)
    return sections, types


class Checker:
    def __init__(self, types, sections=None):
        self.types = types
        self.sections = sections or {}
        self.problems = []

    def problem(self, where, what):
        self.problems.append(f"{where or '(top)'}: {what}")

    def value(self, v, t, table, path, where):
        if t.startswith("const "):
            want = json.loads(t[len("const "):])
            if v != want:
                self.problem(where, f"is {v!r}, docs/json.md says {want!r}")
        elif t in BASE:
            if not BASE[t](v):
                self.problem(where, f"is {json.dumps(v)[:60]}, not a {t}")
        elif t == "map of string":
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                self.problem(where, "is not an object of strings")
        elif t == "object":
            if not isinstance(v, dict):
                self.problem(where, "is not an object")
            else:
                self.object(v, table, path + ".", where)
        elif t.startswith("array of "):
            inner = t[len("array of "):]
            if not isinstance(v, list):
                self.problem(where, "is not an array")
                return
            for i, e in enumerate(v):
                self.value(e, inner, table, path + "[]", f"{where}[{i}]")
        elif t.startswith("document ") and t[len("document "):] in self.sections:
            if not isinstance(v, dict):
                self.problem(where, f"is not an object ({t})")
            else:
                self.object(v, self.sections[t[len("document "):]], "", where)
        elif t in self.types:
            if not isinstance(v, dict):
                self.problem(where, f"is not an object ({t})")
            else:
                self.object(v, self.types[t], "", where)
        else:
            self.problem(where, f"docs/json.md uses unknown type {t!r}")

    def object(self, obj, table, prefix, where):
        children = {k[len(prefix):]: spec for k, spec in table.items()
                    if k.startswith(prefix) and "." not in k[len(prefix):] and "[]" not in k[len(prefix):]}
        for k, v in obj.items():
            w = f"{where}.{k}" if where else k
            if k not in children:
                self.problem(w, "is not documented in docs/json.md")
                continue
            self.value(v, children[k][0], table, prefix + k, w)
        for k, (t, optional) in children.items():
            if k not in obj and not optional:
                self.problem(f"{where}.{k}" if where else k, "is missing (documented, not optional)")


def main():
    doc, section, output = sys.argv[1], sys.argv[2], sys.argv[3]
    sections, types = parse_doc(doc)
    if section not in sections:
        print(f"docs/json.md has no section {section!r}", file=sys.stderr)
        return 1
    text = open(output, encoding="utf-8").read()
    problems = []
    if "\\/" in text:
        problems.append("escaped slash (\\/) in the output")
    try:
        value = json.loads(text)   # exactly one document: a second one is "Extra data"
    except json.JSONDecodeError as e:
        print(f"{section}: not one JSON document: {e}", file=sys.stderr)
        return 1
    c = Checker(types, sections)
    if not isinstance(value, dict):
        c.problem("", "the document is not an object")
    else:
        c.object(value, sections[section], "", "")
    problems += c.problems
    for p in problems:
        print(f"{section}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
