#!/usr/bin/env bash
# Refreshes the vendor API descriptions under tests/fixtures/specs/ from their
# sources (package registries through their ordinary clients), trimmed to the
# operations ringmaster uses. Needs network, npm, pip and python3; never run by
# the tests, which read the committed files.
#
#   scripts/refresh-specs.sh            # every plane
#   AWX_SOURCE=/path/to/awx scripts/refresh-specs.sh   # also check the AWX extract
#
# Versions are pinned below; bump one, run this, and let the contract tests
# (cargo test --test 'conformance_*', cargo test --lib planes::apispec) tell
# what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

OCTOKIT_OPENAPI=23.0.2        # npm @octokit/openapi (GitHub's api.github.com description)
MSGRAPH_SDK=1.65.0            # PyPI msgraph-sdk (Graph v1.0, generated from msgraph-metadata)
MSGRAPH_BETA_SDK=1.66.0       # PyPI msgraph-beta-sdk (Graph beta)
LANDSCAPE_API=0.9.0           # PyPI landscape-api-py3 (Canonical's schemas.json)
JAMF_PRO_SDK=0.9a1            # PyPI jamf-pro-sdk (cross-check of the Jamf extract)
DJANGO_ANSIBLE_BASE=2026.6.2  # PyPI django-ansible-base (AWX's list filters)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
specs=tests/fixtures/specs

echo "github: @octokit/openapi@$OCTOKIT_OPENAPI"
(cd "$work" && npm pack --silent "@octokit/openapi@$OCTOKIT_OPENAPI" >/dev/null && mkdir octokit && tar -xzf octokit-openapi-*.tgz -C octokit)
python3 scripts/specs/github.py "$work/octokit/package/generated/api.github.com.json" "$specs/github/api.github.com.json" "$OCTOKIT_OPENAPI"

echo "intune: msgraph-sdk $MSGRAPH_SDK, msgraph-beta-sdk $MSGRAPH_BETA_SDK"
python3 -m pip download --quiet --no-deps -d "$work/py" "msgraph-sdk==$MSGRAPH_SDK" "msgraph-beta-sdk==$MSGRAPH_BETA_SDK" "landscape-api-py3==$LANDSCAPE_API" "jamf-pro-sdk==$JAMF_PRO_SDK"
(cd "$work" && mkdir v1 beta landscape jamf \
  && unzip -q py/msgraph_sdk-*.whl -d v1 && unzip -q py/msgraph_beta_sdk-*.whl -d beta \
  && unzip -q py/landscape_api_py3-*.whl -d landscape && unzip -q py/jamf_pro_sdk-*.whl -d jamf)
MSGRAPH_SDK_VERSION="$MSGRAPH_SDK" MSGRAPH_BETA_SDK_VERSION="$MSGRAPH_BETA_SDK" \
  python3 scripts/specs/graph.py "$work/beta/msgraph_beta/generated" "$work/v1/msgraph/generated" "$specs/intune"

echo "landscape: landscape-api-py3 $LANDSCAPE_API"
python3 scripts/specs/landscape.py "$work/landscape/landscape_api/schemas.json" "$specs/landscape/legacy-api.json" "PyPI landscape-api-py3 $LANDSCAPE_API"

echo "jamf: the extract, lists from jamf-pro-sdk $JAMF_PRO_SDK"
JAMF_PRO_SDK_VERSION="$JAMF_PRO_SDK" python3 scripts/specs/jamf.py "$work/jamf/jamf_pro_sdk" "$specs/jamf/jamf-pro-api.json"

if [ -n "${AWX_SOURCE:-}" ]; then
  echo "awx: checking the extract against $AWX_SOURCE"
  python3 -m pip download --quiet --no-deps -d "$work/py" "django-ansible-base==$DJANGO_ANSIBLE_BASE"
  (cd "$work" && mkdir dab && unzip -q py/django_ansible_base-*.whl -d dab)
  python3 scripts/specs/awx.py "$AWX_SOURCE" "$specs/awx/awx-api.json" "$work/dab/ansible_base/rest_filters"
else
  echo "awx: set AWX_SOURCE to a checkout of ansible/awx (tag 24.6.1) to check the extract"
fi
echo "done; review git diff $specs"
