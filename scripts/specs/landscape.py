"""Trims Canonical's Landscape legacy API schema (`landscape_api/schemas.json`,
shipped with the Landscape API client; here from the PyPI package
`landscape-api-py3`, the Python 3 port of Canonical's `landscape-api`) to the
actions ringmaster calls, and records how the client sends a call.

Run by scripts/refresh-specs.sh; never at test time.
"""

import json
import sys

ACTIONS = ["GetComputers", "InstallPackages", "RemovePackages", "GetActivities", "CancelActivities", "GetPackages"]
VERSION = "2011-08-01"


def main():
    source, target, package = sys.argv[1:4]
    with open(source, encoding="utf-8") as handle:
        schemas = json.load(handle)
    actions = {}
    for name in ACTIONS:
        action = dict(schemas[name][VERSION])
        action.pop("doc", None)
        action["parameters"] = [{k: v for k, v in p.items() if k != "doc"} for p in action["parameters"]]
        actions[name] = action
    document = {
        "info": {
            "title": "Landscape legacy API (actions ringmaster calls)",
            "version": VERSION,
            "x-source": package + ": landscape_api/schemas.json (Canonical), landscape_api/base.py (run_query, fetch)",
            "x-dialect": "landscape",
        },
        "x-client": {
            "path": "/api/",
            "method": "POST",
            "content-type": "application/x-www-form-urlencoded",
            "signed-parameters": ["access_key_id", "action", "signature_method", "signature_version", "timestamp", "version"],
            "signature_method": "HmacSHA256",
            "signature_version": "2",
            "list-encoding": "name.N, N from 1",
            "boolean-encoding": ["true", "false"],
        },
        "actions": actions,
    }
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    main()
