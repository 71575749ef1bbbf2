#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the real tools the
# tests drive (minisign, git, ssh-keygen, prometheus), then `cargo test`. Used by README and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v minisign >/dev/null 2>&1 || need_apt+=(minisign)
# The audit bundle's VERIFY.md is run for real with minisign, sha256sum and jq.
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# The incident intake's tests route alerts through the real Alertmanager.
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
# /metrics is scraped by the real Prometheus; promtool lints it and the rules.
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# The status page is tested in a real headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# Progress bars are tested on a real pseudo-terminal made by script(1).
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
# Signed-commit tests make SSH keys and signatures with the real ssh-keygen.
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
# PostgreSQL for the shared store suite (tests/support/postgres.rs runs its
# own initdb + postgres in a temp dir; Debian keeps the binaries off PATH).
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
# The TLS tests of the PostgreSQL store make their CA and certificates with it.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Git over SSH is tested against a real sshd on 127.0.0.1.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# The Ansible connector's tests run the real ansible-playbook.
if ! command -v ansible-playbook >/dev/null 2>&1; then
  echo "installing ansible-core (pip)"
  python3 -m pip install --quiet ansible-core
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# The WORM copy's tests run a real local S3 server with Object Lock (moto).
if ! python3 -c 'import moto.server, flask, werkzeug' >/dev/null 2>&1; then
  echo "installing moto[server] (pip)"
  python3 -m pip install --quiet 'moto[server]'
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# pip may install console scripts outside PATH (e.g. under pyenv or ~/.local).
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH

# Tests make commits in temporary repositories; give git an identity if none.
git config --global user.name >/dev/null 2>&1 || git config --global user.name "ringmaster tests"
git config --global user.email >/dev/null 2>&1 || git config --global user.email "tests@ringmaster.invalid"

cargo test --locked "$@"
