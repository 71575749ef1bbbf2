"""Writes the Jamf Pro extract (tests/fixtures/specs/jamf/jamf-pro-api.json):
the Jamf Pro API and Classic API operations ringmaster sends, in OpenAPI 3
shape.

Jamf serves its Jamf Pro API description from each instance (`/api/schema`)
and publishes it on developer.jamf.com; no registry carries a copy. The
operations, parameters and fields below are transcribed from that reference
(Jamf Pro 11.x), and the lists a client may send (inventory sections, sort and
RSQL filter fields, the package record's fields, the token path) are taken
from the MIT-licensed `jamf-pro-sdk` (PyPI), which keeps them in step with
Jamf's description. The Classic API (XML) has no machine-readable description:
its paths are listed so that an unknown one fails, its XML bodies are not
checked.

Run by scripts/refresh-specs.sh; never at test time.
"""

import importlib.util
import json
import os
import re
import sys


def load_options(sdk):
    path = os.path.join(sdk, "models/pro/api_options.py")
    spec = importlib.util.spec_from_file_location("api_options", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def package_fields(sdk):
    with open(os.path.join(sdk, "models/pro/packages.py"), encoding="utf-8") as handle:
        text = handle.read()
    body = text.split("class Package(", 1)[1]
    fields = {}
    for name, kind in re.findall(r"^    (\w+): (Optional\[\w+\]|\w+)$", body, re.M):
        optional = kind.startswith("Optional")
        base = kind[9:-1] if optional else kind
        schema = {"str": {"type": "string"}, "int": {"type": "integer"}, "bool": {"type": "boolean"}}.get(base, {})
        fields[name] = (dict(schema, nullable=True) if optional else schema, optional)
    return fields


def token_path(sdk):
    with open(os.path.join(sdk, "clients/auth.py"), encoding="utf-8") as handle:
        found = re.search(r'base_server_url}(/api/v1/oauth/token)"', handle.read())
    if not found:
        raise SystemExit("jamf-pro-sdk no longer names /api/v1/oauth/token; re-read Jamf's reference")
    return found.group(1)


def listing(item):
    return {
        "200": {"description": "A page", "content": {"application/json": {"schema": {
            "type": "object", "required": ["totalCount", "results"],
            "properties": {"totalCount": {"type": "integer"}, "results": {"type": "array", "items": {"$ref": "#/components/schemas/" + item}}}}}}},
        "4XX": {"$ref": "#/components/responses/error"},
    }


def paging(sort_fields, filter_fields):
    return [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "page-size", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "sort", "in": "query", "schema": {"type": "array", "items": {"type": "string"}, "x-sort-fields": sort_fields}},
        {"name": "filter", "in": "query", "schema": {"type": "string", "x-rsql-fields": filter_fields}},
    ]


def classic(methods):
    out = {}
    for method in methods:
        operation = {"responses": {"2XX": {"description": "XML"}, "4XX": {"description": "Classic API error (HTML or XML)"}}}
        if method in ("post", "put"):
            operation["requestBody"] = {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}
        out[method] = operation
    return out


def main():
    sdk, target = sys.argv[1:3]
    options = load_options(sdk)
    fields = package_fields(sdk)
    package = {
        "type": "object",
        "required": [name for name, (_, optional) in fields.items() if not optional and name not in ("cloudTransferStatus", "indexed", "fillExistingUsers", "swu", "selfHealNotify", "osInstall", "ignoreConflicts")],
        "properties": {name: schema for name, (schema, _) in fields.items()},
    }
    # Jamf's package record knows two checksum kinds (hashType MD5 or
    # SHA_512); a SHA-256 goes in the sha256 field. (Jamf Pro API reference,
    # Package; Classic API package checksum types.)
    package["properties"]["hashType"] = {"type": "string", "nullable": True, "enum": ["MD5", "SHA_512", None]}
    package["properties"]["id"]["readOnly"] = True
    v3 = "/v3/computers-inventory"
    document = {
        "openapi": "3.0.1",
        "info": {
            "title": "Jamf Pro API and Classic API (extract of the operations ringmaster sends)",
            "version": "11.x",
            "x-source": "Jamf Pro API reference (developer.jamf.com, the /api/schema description of Jamf Pro 11.x), lists cross-checked with PyPI jamf-pro-sdk " + os.environ.get("JAMF_PRO_SDK_VERSION", "?") + " (MIT); Classic API reference for /JSSResource paths",
            "x-dialect": "openapi",
        },
        "servers": [{"url": "/api"}],
        "paths": {
            token_path(sdk)[len("/api"):]: {"post": {
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["client_id", "client_secret", "grant_type"], "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"}, "grant_type": {"type": "string", "enum": ["client_credentials"]}}}}}},
                "responses": {"200": {"description": "token", "content": {"application/json": {"schema": {"type": "object", "required": ["access_token", "expires_in"], "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string"}, "expires_in": {"type": "integer"}, "scope": {"type": "string"}}}}}}, "4XX": {"$ref": "#/components/responses/error"}}}},
            "/v1/auth/token": {"post": {"responses": {"200": {"description": "token", "content": {"application/json": {"schema": {"type": "object", "required": ["token", "expires"], "properties": {"token": {"type": "string"}, "expires": {"type": "string", "format": "date-time"}}}}}}, "4XX": {"$ref": "#/components/responses/error"}}}},
            "/v1/packages": {
                "get": {"parameters": paging(options.get_packages_v1_allowed_sort_fields, options.get_packages_v1_allowed_filter_fields), "responses": listing("Package")},
                "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Package"}}}},
                          "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "href": {"type": "string"}}}}}}, "4XX": {"$ref": "#/components/responses/error"}}},
            },
            "/v1/packages/{id}": {
                "get": {"responses": {"200": {"description": "package", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Package"}}}}, "4XX": {"$ref": "#/components/responses/error"}}},
                "put": {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Package"}}}},
                         "responses": {"200": {"description": "package", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Package"}}}}, "4XX": {"$ref": "#/components/responses/error"}}},
            },
            "/v1/computers-inventory": {"get": {
                "deprecated": True,
                "x-deprecation": "Jamf deprecated the v1 computer inventory API on 2025-06-30; use /v3/computers-inventory",
                "parameters": paging(options.get_computer_inventory_v1_allowed_sort_fields, options.get_computer_inventory_v1_allowed_filter_fields) + [
                    {"name": "section", "in": "query", "schema": {"type": "array", "items": {"type": "string", "enum": options.get_computer_inventory_v1_allowed_sections}}}],
                "responses": listing("ComputerInventory")}},
            v3: {"get": {
                "parameters": paging(options.get_computer_inventory_v3_allowed_sort_fields, options.get_computer_inventory_v3_allowed_filter_fields) + [
                    {"name": "section", "in": "query", "schema": {"type": "array", "items": {"type": "string", "enum": options.get_computer_inventory_v3_allowed_sections}}}],
                "responses": listing("ComputerInventory")}},
        },
        "x-classic-api": {
            "servers": [{"url": "/JSSResource"}],
            "paths": {
                "/computergroups/id/{id}": classic(["get"]),
                "/policies": classic(["get"]),
                "/policies/id/{id}": classic(["get", "post", "put", "delete"]),
                "/policies/name/{name}": classic(["get"]),
                "/logflush/policy/id/{id}/interval/{interval}": classic(["delete"]),
                "/computerhistory/id/{id}/subset/{subset}": classic(["get"]),
            },
        },
        "components": {
            "responses": {"error": {"description": "ApiError", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}},
            "schemas": {
                "Package": package,
                "ComputerInventory": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string"}, "udid": {"type": "string"},
                    "general": {"type": "object", "nullable": True, "properties": {
                        "name": {"type": "string"}, "platform": {"type": "string"},
                        "lastContactTime": {"type": "string", "format": "date-time", "nullable": True},
                        "reportDate": {"type": "string", "format": "date-time", "nullable": True}}},
                    "applications": {"type": "array", "nullable": True, "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "path": {"type": "string"}, "version": {"type": "string"}, "bundleId": {"type": "string"},
                        "macAppStore": {"type": "boolean"}, "sizeMegabytes": {"type": "integer"}, "updateAvailable": {"type": "boolean"}, "externalVersionId": {"type": "string"}}}}}},
                "ApiError": {"type": "object", "properties": {"httpStatus": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "code": {"type": "string"}, "description": {"type": "string"}, "id": {"type": "string", "nullable": True}, "field": {"type": "string", "nullable": True}}}}}},
            },
        },
    }
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    main()
