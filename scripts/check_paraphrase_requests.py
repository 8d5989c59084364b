#!/usr/bin/env python3
"""Checks the paraphrase request set used by the tool-search benchmark.

Every request must be written in a user's words, not the API's: no word of the name of any
API it is labelled with may appear in it (after lower-casing, splitting camelCase, letters
from digits and punctuation, and a light suffix stemming, so "codes" counts as "code").
Generic function words ("get", "list", "all", "by", ...) are not counted.

Also checks the file's shape: unique ids, a group per request, at least one label each,
labels as [tool_name, api_name] pairs, and — when TOOL_SEARCH_DATA points at the query
directory — that every label names a tool of the benchmark's catalog.

Usage: python3 scripts/check_paraphrase_requests.py [path]   (exit status 1 on a violation)
"""

import json
import os
import re
import sys

DEFAULT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "benches", "data", "paraphrase_requests.jsonl"
)

# Function words and generic verbs of endpoint names; they carry no meaning of their own.
GENERIC = {
    "get", "set", "list", "all", "the", "a", "an", "of", "for", "by", "and", "or", "to", "in",
    "on", "at", "with", "from", "is", "it", "api", "v", "endpoint", "me", "my", "your", "you",
    "be", "do", "does", "this", "that", "when", "one", "if", "about", "out", "into", "as",
    "http", "https", "www", "com",
}

FILES = ["G1_instruction", "G1_category", "G1_tool", "G2_instruction", "G2_category", "G3_instruction"]


def stem(word):
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def words(text):
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Za-z])([0-9])|([0-9])([A-Za-z])", lambda m: " ".join(g for g in m.groups() if g), text)
    out = set()
    for token in re.split(r"[^0-9A-Za-z]+", text.lower()):
        if len(token) < 2 or token.isdigit() or token in GENERIC:
            continue
        out.add(stem(token))
    return out


def catalog_ids(root):
    ids = set()
    for name in FILES:
        path = os.path.join(root, "test_instruction", name + ".json")
        with open(path, encoding="utf-8") as f:
            for query in json.load(f):
                for api in query.get("api_list", []):
                    ids.add((api["tool_name"].strip(), api["api_name"].strip()))
    return ids


def check(path):
    errors = []
    catalog = catalog_ids(os.environ["TOOL_SEARCH_DATA"]) if os.environ.get("TOOL_SEARCH_DATA") else None
    seen = set()
    count = 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            item = json.loads(line)
            rid = item.get("id")
            if not rid or rid in seen:
                errors.append(f"line {line_no}: missing or duplicate id {rid!r}")
            seen.add(rid)
            if not item.get("group"):
                errors.append(f"{rid}: no group")
            request = item.get("request", "")
            labels = item.get("relevant", [])
            if not request or not labels:
                errors.append(f"{rid}: empty request or no label")
            said = words(request)
            for label in labels:
                if not (isinstance(label, list) and len(label) == 2):
                    errors.append(f"{rid}: label {label!r} is not [tool_name, api_name]")
                    continue
                tool, api = label
                if catalog is not None and (tool, api) not in catalog:
                    errors.append(f"{rid}: {tool} / {api} is not in the catalog")
                clash = said & words(api)
                if clash:
                    errors.append(f"{rid}: uses {sorted(clash)} from the API name {api!r} ({tool})")
    return count, errors


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    count, errors = check(path)
    for e in errors:
        print(e)
    print(f"{count} requests checked, {len(errors)} problems")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
