"""Trims GitHub's api.github.com OpenAPI description (npm package
`@octokit/openapi`, generated/api.github.com.json: GitHub's own description
with Octokit's extensions) to the REST operations and webhook payloads
ringmaster uses, keeping every component they reference.

Run by scripts/refresh-specs.sh; never at test time.
"""

import json
import sys

OPERATIONS = {
    "/repos/{owner}/{repo}/pulls": ["get"],
    "/repos/{owner}/{repo}/pulls/{pull_number}": ["get"],
    "/repos/{owner}/{repo}/pulls/{pull_number}/reviews": ["get"],
    "/repos/{owner}/{repo}/commits/{commit_sha}/pulls": ["get"],
    "/repos/{owner}/{repo}/issues/{issue_number}/comments": ["get", "post"],
    "/repos/{owner}/{repo}/issues/comments/{comment_id}": ["patch"],
    "/repos/{owner}/{repo}/statuses/{sha}": ["post"],
    "/repos/{owner}/{repo}/check-runs": ["post"],
    "/app/installations/{installation_id}/access_tokens": ["post"],
}
WEBHOOKS = [
    "ping",
    "push",
    "pull-request-opened",
    "pull-request-synchronize",
    "pull-request-closed",
    "pull-request-reopened",
    "pull-request-edited",
    "pull-request-review-submitted",
    "pull-request-review-dismissed",
    "pull-request-review-edited",
]
DROP_KEYS = ("description", "summary", "examples", "example", "externalDocs", "x-github", "tags")


def refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def strip(node, names=False):
    """Drops prose and examples; `names` marks a map whose keys are property
    or response names (kept whatever they are called)."""
    if isinstance(node, dict):
        kept = {}
        for key, value in node.items():
            if not names and key in DROP_KEYS:
                continue
            kept[key] = strip(value, names=key in ("properties", "responses", "content", "paths", "schemas", "parameters", "x-webhooks") and not names)
        return kept
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def resolve(document, pointer):
    node = document
    for part in pointer.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def main():
    source, target = sys.argv[1:3]
    with open(source, encoding="utf-8") as handle:
        document = json.load(handle)
    paths = {}
    for path, methods in OPERATIONS.items():
        item = document["paths"][path]
        paths[path] = {m: item[m] for m in methods}
        if "parameters" in item:
            paths[path]["parameters"] = item["parameters"]
    webhooks = {name: document["x-webhooks"][name] for name in WEBHOOKS}
    kept = {}
    pending = set()
    refs(paths, pending)
    refs(webhooks, pending)
    while pending:
        pointer = pending.pop()
        if pointer in kept:
            continue
        node = resolve(document, pointer)
        kept[pointer] = node
        found = set()
        refs(node, found)
        pending |= found - set(kept)
    components = {}
    for pointer, node in kept.items():
        _, _, section, name = pointer.split("/", 3)
        components.setdefault(section, {})[name] = node
    trimmed = {
        "openapi": document["openapi"],
        "info": {
            "title": "GitHub v3 REST API (api.github.com), trimmed to what ringmaster uses",
            "version": document["info"]["version"],
            "x-source": "npm @octokit/openapi " + sys.argv[3] + ", generated/api.github.com.json",
            "x-dialect": "openapi",
        },
        "servers": document["servers"],
        "paths": strip(paths),
        "x-webhooks": strip(webhooks),
        "components": {section: {k: strip(v) for k, v in sorted(items.items())} for section, items in sorted(components.items())},
    }
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(trimmed, handle, indent=None, separators=(",", ":"), sort_keys=False)
        handle.write("\n")


if __name__ == "__main__":
    main()
