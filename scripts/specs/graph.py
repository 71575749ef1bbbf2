"""Trimmed Microsoft Graph descriptions (OpenAPI 3.0) for the operations the
Intune connector sends, extracted from Microsoft's Kiota-generated Python SDKs
(`msgraph-sdk` for v1.0, `msgraph-beta-sdk` for beta), which are generated from
the OpenAPI description that Microsoft publishes from the Graph CSDL
(`microsoftgraph/msgraph-metadata`). Output keeps the official description's
shape: `/paths` with `$select`/`$filter` parameters whose `$select` items
enumerate the entity's declared properties, `components/schemas` named
`microsoft.graph.<type>` with `allOf` inheritance and an `@odata.type`
discriminator, `deprecated` plus `x-ms-deprecation` on deprecated operations.

Run by scripts/refresh-specs.sh; never at test time.
"""

import json
import os
import re
import sys

PRIMITIVES = {
    "get_str_value": {"type": "string"},
    "get_int_value": {"type": "integer", "format": "int32"},
    "get_float_value": {"type": "number"},
    "get_bool_value": {"type": "boolean"},
    "get_datetime_value": {"type": "string", "format": "date-time"},
    "get_date_value": {"type": "string", "format": "date"},
    "get_time_value": {"type": "string", "format": "time"},
    "get_timedelta_value": {"type": "string", "format": "duration"},
    "get_uuid_value": {"type": "string", "format": "uuid"},
    "get_bytes_value": {"type": "string", "format": "base64url"},
}
PRIMITIVE_ITEMS = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "UUID": {"type": "string", "format": "uuid"},
    "datetime.datetime": {"type": "string", "format": "date-time"},
}


def lower_first(name):
    return name[:1].lower() + name[1:]


class Sdk:
    def __init__(self, root):
        self.root = root
        self.models = os.path.join(root, "models")
        self.classes = {}
        for directory in (self.models, os.path.join(self.models, "o_data_errors")):
            self.index(directory)
        self.builders = {}
        for directory, _, files in os.walk(root):
            if "/models" in directory[len(root):]:
                continue
            for file in files:
                if not file.endswith("_request_builder.py"):
                    continue
                path = os.path.join(directory, file)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                match = re.search(r'super\(\).__init__\(request_adapter, "([^"]*)"', text)
                if not match:
                    continue
                template = match.group(1)
                bare = template.split("{?")[0].replace("{+baseurl}", "")
                self.builders[normalise(bare)] = (template, text, directory)

    def index(self, directory):
        for file in os.listdir(directory):
            if not file.endswith(".py") or file.endswith("_request_builder.py"):
                continue
            path = os.path.join(directory, file)
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            match = re.search(r"^class (\w+)\(([^)]*)\)", text, re.M)
            if match and match.group(1) not in self.classes:
                self.classes[match.group(1)] = (path, text)

    def operations(self, path):
        """The operations of a path template ({name} parameters), as OpenAPI."""
        found = self.builders.get(normalise(path))
        if found is None:
            return None
        template, text, directory = found
        for name in re.findall(r"self,body: (\w+)", text):
            if name not in self.classes:
                path = os.path.join(directory, snake(name) + ".py")
                with open(path, encoding="utf-8") as handle:
                    self.classes[name] = (path, handle.read())
        query = []
        if "{?" in template:
            query = [p.replace("%24", "$") for p in template.split("{?")[1].rstrip("}").split(",")]
        operations = {}
        for match in re.finditer(
            r"    async def (get|post|patch|put|delete)\(self,(.*?)\) -> (Optional\[([\w.]+)\]|None):\n(.*?)(?=\n    (?:async )?def |\n    @|\Z)",
            text,
            re.S,
        ):
            method, signature, _, returns, body = match.groups()
            operation = {}
            deprecation = re.search(r'warn\("((?:[^"\\]|\\.)*) as of ([^ ]+) on ([0-9-]+) and will be removed ([0-9-]+)", DeprecationWarning\)', body)
            if deprecation:
                operation["deprecated"] = True
                operation["x-ms-deprecation"] = {
                    "description": deprecation.group(1),
                    "version": deprecation.group(2),
                    "date": deprecation.group(3),
                    "removalDate": deprecation.group(4),
                }
            if "QueryParameters]]" in signature and "[QueryParameters]" not in signature:
                operation["parameters"] = [{"name": name, "in": "query"} for name in query]
            body_type = re.search(r"body: (\w+)", signature)
            if body_type:
                operation["x-body-class"] = body_type.group(1)
            if returns == "bytes":
                operation["x-response"] = "binary"
            elif returns:
                operation["x-response-class"] = returns
            operations[method] = operation
        return operations

    def model(self, class_name):
        path, text = self.classes[class_name]
        header = re.search(r"^class (\w+)\(([^)]*)\)", text, re.M)
        bases = [b.strip() for b in header.group(2).split(",")]
        parent = next((b for b in bases if b in self.classes), None)
        enum = "Enum" in bases
        if enum:
            values = re.findall(r'^    \w+ = "([^"]*)",?$', text, re.M)
            return {"enum": values}
        odata = re.search(r'odata_type: Optional\[str\] = "#([\w.]+)"', text)
        properties = {}
        deserializers = text.split("def get_field_deserializers", 1)
        if len(deserializers) == 2:
            block = deserializers[1].split("\n    def ", 1)[0]
            for name, getter, argument in re.findall(
                r'"([^"]+)": lambda n : setattr\(self, \'\w+\', n\.(\w+)\(([^)]*)\)\)', block
            ):
                properties[name] = (getter, argument)
        return {"parent": parent, "odata": odata.group(1) if odata else None, "properties": properties}


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def normalise(path):
    path = path.replace("%2D", "-")
    path = re.sub(r"\{[^}]*\}", "{}", path)
    path = re.sub(r"/graph\.", "/microsoft.graph.", path)
    return path


class Writer:
    def __init__(self, sdk):
        self.sdk = sdk
        self.schemas = {}
        self.names = {}
        self.pending = []
        self.entity_classes = set()

    def type_name(self, class_name):
        if class_name in self.names:
            return self.names[class_name]
        model = self.sdk.model(class_name)
        if "enum" in model:
            name = "microsoft.graph." + lower_first(class_name)
        elif model["odata"]:
            name = model["odata"]
        else:
            name = "microsoft.graph." + lower_first(class_name)
        self.names[class_name] = name
        return name

    def is_entity(self, class_name):
        while class_name:
            if class_name == "Entity":
                return True
            class_name = self.sdk.model(class_name).get("parent")
        return False

    def ref(self, class_name, follow=True):
        name = self.type_name(class_name)
        if follow:
            self.include(class_name)
        return {"$ref": "#/components/schemas/" + name}

    def include(self, class_name):
        name = self.type_name(class_name)
        if name in self.schemas:
            return
        self.schemas[name] = None
        model = self.sdk.model(class_name)
        if "enum" in model:
            self.schemas[name] = {"title": name.split(".")[-1], "type": "string", "enum": model["enum"]}
            return
        properties = {}
        for json_name, (getter, argument) in model["properties"].items():
            properties[json_name] = self.property(getter, argument)
        own = {"title": name.split(".")[-1], "type": "object", "properties": properties}
        if model["parent"]:
            self.schemas[name] = {"allOf": [self.ref(model["parent"]), own]}
        else:
            self.schemas[name] = own

    def property(self, getter, argument):
        if getter in PRIMITIVES:
            return dict(PRIMITIVES[getter], nullable=True)
        if getter == "get_enum_value":
            return {"anyOf": [self.ref(argument)], "nullable": True}
        if getter == "get_collection_of_enum_values":
            return {"type": "array", "items": self.ref(argument)}
        if getter == "get_collection_of_primitive_values":
            return {"type": "array", "items": dict(PRIMITIVE_ITEMS.get(argument, {"type": "string"}))}
        if getter in ("get_object_value", "get_collection_of_object_values"):
            if self.is_entity(argument) and argument not in self.entity_classes:
                # A navigation property: declared (so $select and bodies may
                # name it), its entity type not expanded into this extract.
                target = {"type": "object", "x-ms-navigation-type": self.type_name(argument)}
            else:
                target = self.ref(argument)
            if getter == "get_object_value":
                return {"anyOf": [target], "nullable": True}
            return {"type": "array", "items": target}
        return {}

    def derived(self, class_names):
        """Adds the discriminator mapping from every included base to its included derived types."""
        for class_name in class_names:
            self.include(class_name)
        for class_name in list(self.names):
            model = self.sdk.model(class_name)
            if "enum" in model or self.schemas.get(self.type_name(class_name)) is None:
                continue
            parent = model["parent"]
            while parent:
                base = self.schemas.get(self.type_name(parent))
                if base is None:
                    break
                target = base["allOf"][1] if "allOf" in base else base
                mapping = target.setdefault("discriminator", {"propertyName": "@odata.type", "mapping": {}})["mapping"]
                mapping["#" + self.type_name(class_name)] = "#/components/schemas/" + self.type_name(class_name)
                parent = self.sdk.model(parent)["parent"]

    def properties_of(self, class_name):
        names = []
        while class_name:
            model = self.sdk.model(class_name)
            names = list(model["properties"]) + names
            class_name = model["parent"]
        return [n for n in dict.fromkeys(names) if not n.startswith("@")]


def build(root, version, package, used, derived, entities):
    sdk = Sdk(root)
    writer = Writer(sdk)
    writer.entity_classes = set(entities)
    paths = {}
    for path in used:
        operations = sdk.operations(path)
        if operations is None:
            raise SystemExit(f"{package}: {path} is not in the description")
        item = {}
        for method, operation in operations.items():
            out = {}
            if "deprecated" in operation:
                out["deprecated"] = True
                out["x-ms-deprecation"] = operation["x-ms-deprecation"]
            response_class = operation.get("x-response-class")
            entity_class = None
            if response_class:
                model = sdk.model(response_class)
                if response_class.endswith("CollectionResponse") and "value" in model["properties"]:
                    entity_class = model["properties"]["value"][1]
                else:
                    entity_class = response_class
            parameters = []
            for parameter in operation.get("parameters", []):
                name = parameter["name"]
                schema = {"type": "string"}
                if name in ("$select", "$orderby", "$expand") and entity_class and name == "$select":
                    schema = {"type": "array", "uniqueItems": True, "items": {"type": "string", "enum": writer.properties_of(entity_class)}}
                elif name in ("$orderby", "$expand"):
                    schema = {"type": "array", "uniqueItems": True, "items": {"type": "string"}}
                elif name in ("$top", "$skip"):
                    schema = {"minimum": 0, "type": "integer"}
                elif name == "$count":
                    schema = {"type": "boolean"}
                parameters.append({"name": name, "in": "query", "style": "form", "explode": False, "schema": schema})
            if method == "get" and entity_class and response_class.endswith("CollectionResponse"):
                # Paging: Graph hands out an opaque @odata.nextLink that repeats
                # the query with $skiptoken (https://learn.microsoft.com/graph/paging).
                parameters.append({"name": "$skiptoken", "in": "query", "schema": {"type": "string"}, "x-ms-paging": True})
            if parameters:
                out["parameters"] = parameters
            if "x-body-class" in operation:
                body_class = operation["x-body-class"]
                out["requestBody"] = {"required": True, "content": {"application/json": {"schema": writer.ref(body_class)}}}
            if operation.get("x-response") == "binary":
                responses = {"2XX": {"description": "Success", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
            elif response_class:
                responses = {"2XX": {"description": "Success", "content": {"application/json": {"schema": writer.ref(response_class)}}}}
            else:
                responses = {"2XX": {"description": "Success"}}
            responses["4XX"] = {"$ref": "#/components/responses/error"}
            responses["5XX"] = {"$ref": "#/components/responses/error"}
            out["responses"] = responses
            item[method] = out
        paths[path] = item
    writer.derived(derived)
    writer.include("ODataError")
    error_ref = "#/components/schemas/" + writer.type_name("ODataError")
    schemas = {name: writer.schemas[name] for name in sorted(writer.schemas)}
    return {
        "openapi": "3.0.4",
        "info": {
            "title": f"Microsoft Graph {version} (trimmed to the operations ringmaster sends)",
            "version": version,
            "x-source": f"PyPI {package} (generated by Kiota from microsoftgraph/msgraph-metadata openapi/{version}/openapi.yaml), package version {PACKAGE_VERSIONS.get(package, '?')}",
            "x-dialect": "odata",
        },
        "servers": [{"url": f"/{version}"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "error": {
                    "description": "error",
                    "content": {"application/json": {"schema": {"$ref": error_ref}}},
                }
            },
        },
    }


PACKAGE_VERSIONS = {}

BETA_PATHS = [
    "/deviceAppManagement/mobileApps",
    "/deviceAppManagement/mobileApps/{mobileApp-id}",
    "/deviceAppManagement/mobileApps/{mobileApp-id}/assignments",
    "/deviceAppManagement/mobileApps/{mobileApp-id}/assign",
    "/deviceAppManagement/mobileApps/{mobileApp-id}/relationships",
    "/deviceAppManagement/mobileApps/{mobileApp-id}/updateRelationships",
]
for cast in ("win32LobApp", "macOSPkgApp"):
    base = "/deviceAppManagement/mobileApps/{mobileApp-id}/microsoft.graph." + cast + "/contentVersions"
    BETA_PATHS += [
        base,
        base + "/{mobileAppContent-id}/files",
        base + "/{mobileAppContent-id}/files/{mobileAppContentFile-id}",
        base + "/{mobileAppContent-id}/files/{mobileAppContentFile-id}/commit",
    ]
BETA_PATHS += [
    "/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport",
    "/deviceManagement/managedDevices",
]
BETA_DERIVED = [
    "Win32LobApp", "MacOSPkgApp", "MobileLobApp",
    "Win32LobAppProductCodeRule", "Win32LobAppFileSystemRule", "Win32LobAppRegistryRule", "Win32LobAppPowerShellScriptRule",
    "GroupAssignmentTarget", "ExclusionGroupAssignmentTarget", "AllDevicesAssignmentTarget", "AllLicensedUsersAssignmentTarget",
    "Win32LobAppAssignmentSettings", "MacOsLobAppAssignmentSettings",
    "MobileAppSupersedence", "MobileAppDependency",
]
BETA_ENTITIES = ["MobileApp", "MobileAppAssignment", "MobileAppRelationship", "MobileAppContent", "MobileAppContentFile", "ManagedDevice", "Entity", "MobileLobApp", "Win32LobApp", "MacOSPkgApp", "MobileAppSupersedence", "MobileAppDependency"]

V1_PATHS = [
    "/groups/{group-id}",
    "/groups/{group-id}/transitiveMembers/microsoft.graph.device",
    "/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport",
    "/deviceManagement/managedDevices",
]
V1_ENTITIES = ["Group", "Device", "ManagedDevice", "Entity", "DirectoryObject"]


def main():
    beta_root, v1_root, out_dir = sys.argv[1:4]
    PACKAGE_VERSIONS["msgraph-beta-sdk"] = os.environ.get("MSGRAPH_BETA_SDK_VERSION", "?")
    PACKAGE_VERSIONS["msgraph-sdk"] = os.environ.get("MSGRAPH_SDK_VERSION", "?")
    beta = build(beta_root, "beta", "msgraph-beta-sdk", BETA_PATHS, BETA_DERIVED, BETA_ENTITIES)
    v1 = build(v1_root, "v1.0", "msgraph-sdk", V1_PATHS, [], V1_ENTITIES)
    for name, document in (("graph-beta.json", beta), ("graph-v1.0.json", v1)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=False)
            handle.write("\n")


if __name__ == "__main__":
    main()
