#!/usr/bin/env python3
"""Prints a Markdown table of a plugin's config keys from `parleyd --describe-plugin X --json`,
so plugin READMEs are generated from the schema the kernel validates against."""
import json
import subprocess
import sys


def rows(keys, prefix=""):
    for k in keys:
        name = prefix + k["name"]
        rng = ""
        if "min" in k or "max" in k:
            rng = f'{k.get("min", "")}..{k.get("max", "")}'
        if "values" in k:
            rng = " \\| ".join(k["values"])
        flags = ", ".join(k.get("flags", []))
        default = k.get("default", "")
        desc = k.get("description", "").replace("|", "\\|")
        yield f'| `{name}` | {k["type"]} | `{default}` | {rng} | {flags} | {desc} |'
        if k.get("children"):
            yield from rows(k["children"], name + ".")


parleyd, plugin = sys.argv[1], sys.argv[2]
keys = json.loads(subprocess.check_output([parleyd, "--describe-plugin", plugin, "--json"]))
print("| key | type | default | range / values | flags | meaning |")
print("|---|---|---|---|---|---|")
print("\n".join(rows(keys)))
