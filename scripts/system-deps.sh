#!/usr/bin/env bash
# Install the system packages Yurt's tests and demo use, when missing and running as root.
# As a normal user, list what is missing; the tests that need it skip and say so.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v shellcheck >/dev/null || need+=(shellcheck)
/usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v ruby >/dev/null || need+=(ruby)  # ruby -c Vagrantfile (tests/cluster)
command -v gpg >/dev/null || need+=(gnupg)  # key-fingerprint checks (tests/cluster)
command -v docker-registry >/dev/null || need+=(docker-registry)  # a real registry (tests/builder)
command -v skopeo >/dev/null || need+=(skopeo)  # image copy/push (controller/builder)
command -v umoci >/dev/null || need+=(umoci)  # image layers and config (controller/builder)
command -v buildah >/dev/null || need+=(buildah)  # Dockerfile apps (controller/builder)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system packages: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "Missing system packages (tests that need them will skip): ${need[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${need[*]}" >&2
fi
