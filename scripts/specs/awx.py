"""Checks the hand-written AWX extract (tests/fixtures/specs/awx/awx-api.json)
against a checkout of ansible/awx: every path is routed in awx/api/urls, every
launch body field is a JobLaunchSerializer field, every prevent_search field
of the Job model hierarchy is listed, every listed filter field is a field of
the model, and the lookups are django-ansible-base's FieldLookupBackend's
(which AWX 24 filters through). The extract is facts read from the source, written by hand; AWX
publishes no machine-readable description of its filters.

Run by scripts/refresh-specs.sh with AWX_SOURCE set; never at test time.
"""

import json
import os
import re
import sys


def read(root, path):
    with open(os.path.join(root, path), encoding="utf-8") as handle:
        return handle.read()


def main():
    root, extract, filters_root = sys.argv[1:4]
    with open(extract, encoding="utf-8") as handle:
        document = json.load(handle)
    problems = []
    urls = "".join(read(root, os.path.join("awx/api/urls", name)) for name in os.listdir(os.path.join(root, "awx/api/urls")) if name.endswith(".py"))
    routes = {
        "/jobs/": r"job_list", "/jobs/{id}/": r"job_detail", "/jobs/{id}/cancel/": r"job_cancel",
        "/jobs/{id}/job_host_summaries/": r"job_job_host_summaries_list",
        "/job_templates/{id}/launch/": r"job_template_launch",
        "/inventories/{id}/groups/": r"inventory_groups_list",
        "/groups/{id}/all_hosts/": r"group_all_hosts_list",
    }
    for path in document["paths"]:
        name = routes.get(path)
        if name is None or f"name='{name}'" not in urls:
            problems.append(f"path {path} is not routed ({name})")
    serializers = read(root, "awx/api/serializers.py")
    launch = serializers.split("class JobLaunchSerializer", 1)[1].split("\nclass ", 1)[0]
    for field in document["components"]["schemas"]["job_launch"]["properties"]:
        if not re.search(rf"^\s+{field} = \w", launch, re.M):
            problems.append(f"launch field {field} is not a JobLaunchSerializer field")
    models = read(root, "awx/main/models/jobs.py") + read(root, "awx/main/models/unified_jobs.py") + read(root, "awx/main/models/base.py")
    prevented = set(re.findall(r"^\s+(\w+) = prevent_search\(", read(root, "awx/main/models/jobs.py").split("class JobTemplate(")[0] + read(root, "awx/main/models/unified_jobs.py").split("class UnifiedJob(")[1], re.M))
    listed = set(document["x-awx-filters"]["models"]["job"]["prevent_search"])
    for field in prevented - listed:
        problems.append(f"prevent_search field {field} of Job is not listed")
    # AWX 24 filters through django-ansible-base's FieldLookupBackend
    # (ansible_base/rest_filters); earlier releases had awx/api/filters.py.
    filters = read(filters_root, "rest_framework/field_lookup_backend.py") + read(filters_root, "utils.py")
    if "Filtering on %(field_name)s is not allowed." not in filters:
        problems.append("the prevent_search refusal moved; re-read the filter backend")
    for lookup in document["x-awx-filters"]["lookups"]:
        if f"'{lookup}'" not in filters:
            problems.append(f"lookup {lookup} is not in FieldLookupBackend")
    for field in document["x-awx-filters"]["models"]["job"]["fields"]:
        if field in ("id", "pk", "created", "modified", "created_by", "modified_by", "labels", "credentials", "hosts"):
            continue
        if not re.search(rf"^\s+{field} = ", models, re.M) and not re.search(rf"^\s+{field} = ", read(root, "awx/main/models/mixins.py"), re.M):
            problems.append(f"job field {field} is not declared in the models")
    if problems:
        raise SystemExit("awx extract disagrees with the source:\n  " + "\n  ".join(problems))
    print("awx extract agrees with", root)


if __name__ == "__main__":
    main()
