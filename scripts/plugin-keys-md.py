#!/usr/bin/env python3
"""Prints a Markdown table of a plugin's config keys from `parleyd --describe-plugin X --json`,
so plugin READMEs are generated from the schema the kernel validates against.
With --check PARLEYD PLUGINS_DIR it verifies every plugin README instead (ctest
integration.ops_plugin_readmes)."""
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


def flat(keys, prefix=""):
    for k in keys:
        name = prefix + k["name"]
        yield name, k
        if k.get("children"):
            yield from flat(k["children"], name + ".")


def check(parleyd, plugins_dir):
    """--check: every plugin folder's README(s) list each config key the plugin declares with
    its default, and each metric name its sources register. Exit 1 naming what is missing."""
    import os
    import re

    metric_re = re.compile(r'(?:counter|gauge|histogram)\(\s*"(parley_[a-z0-9_]+)"', re.S)
    # Dialects are part of transport-ws: their keys and metrics may be documented beside it.
    extra = {"transport-ws": ["dialects"]}
    problems, checked = [], 0
    for plugin in sorted(os.listdir(plugins_dir)):
        folder = os.path.join(plugins_dir, plugin)
        if not os.path.isfile(os.path.join(folder, "CMakeLists.txt")) or plugin in ("dialects", "common"):
            continue
        folders = [folder] + [os.path.join(plugins_dir, e) for e in extra.get(plugin, [])]
        docs = ""
        for f in folders:
            for name in sorted(os.listdir(f)):
                if name.startswith("README") and name.endswith(".md"):
                    docs += open(os.path.join(f, name), encoding="utf-8").read() + "\n"
        try:
            out = subprocess.run([parleyd, "--describe-plugin", plugin, "--json"],
                                 capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            problems.append(f"{plugin}: parleyd --describe-plugin timed out")
            continue
        if out.returncode != 0:
            # Optional plugins (e.g. store-pg without libpq) are not built in every tree.
            print(f"skip {plugin}: not built here ({out.stderr.strip()})")
            continue
        if not docs:
            problems.append(f"{plugin}: no README.md in {folder}")
            continue
        checked += 1
        for name, k in flat(json.loads(out.stdout)):
            # A table row for the key (full path, or the leaf inside a section for nested keys)
            # must carry the default; prose alone does not count as listing it.
            leaf = name.rsplit(".", 1)[-1]
            row = None
            for cand in dict.fromkeys((name, leaf)):
                row = re.search(r"^\|\s*`" + re.escape(cand) + r"`\s*\|.*$", docs, re.M)
                if row:
                    break
            if not row:
                problems.append(f"{plugin}: README has no table row for config key `{name}`")
                continue
            default = k.get("default", "")
            if default and default not in row.group(0):
                problems.append(f"{plugin}: README row for `{name}` lacks its default `{default}`")
        metrics = set()
        for f in folders:
            for root, _dirs, files in os.walk(f):
                for name in files:
                    if name.endswith((".cpp", ".hpp", ".h")):
                        metrics.update(metric_re.findall(open(os.path.join(root, name), encoding="utf-8").read()))
        for m in sorted(metrics):
            # `parley_ws_bytes_in_total` / `_out_total` documents both names.
            cut = [i for i, c in enumerate(m) if c == "_"]
            if m not in docs and not any(m[:i] in docs and f"`{m[i:]}`" in docs for i in cut):
                problems.append(f"{plugin}: README does not mention metric {m}")
    for p in problems:
        print(p)
    if checked == 0:
        problems.append("no plugin could be described")
        print("no plugin could be described: is parleyd built?")
    print(f"{checked} plugins checked, {len(problems)} problems")
    return 1 if problems else 0


if len(sys.argv) == 4 and sys.argv[1] == "--check":
    sys.exit(check(sys.argv[2], sys.argv[3]))
if len(sys.argv) != 3:
    sys.exit("usage: plugin-keys-md.py PARLEYD PLUGIN | --check PARLEYD PLUGINS_DIR")
parleyd, plugin = sys.argv[1], sys.argv[2]
keys = json.loads(subprocess.check_output([parleyd, "--describe-plugin", plugin, "--json"]))
print("| key | type | default | range / values | flags | meaning |")
print("|---|---|---|---|---|---|")
print("\n".join(rows(keys)))
