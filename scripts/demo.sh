#!/usr/bin/env bash
# `make demo`: start Yurt in the background (data in .yurt/), create the example app and
# git push it. Safe to run again: it reuses the running server and the app.
set -euo pipefail

data=${1:-$PWD/.yurt}
listen=${2:-127.0.0.1:7100}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.venv/bin"
url="http://$listen"
mkdir -p "$data"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! curl -fsS "$url/api/health" >/dev/null 2>&1; then
  say "Starting yurt server on $url (data in $data, log in $data/server.log)"
  nohup "$bin/yurt" server --data-dir "$data" --listen "$listen" --stop-apps >>"$data/server.log" 2>&1 &
  echo $! >"$data/server.pid"
  for _ in $(seq 1 100); do
    curl -fsS "$url/api/health" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "$url/api/health" >/dev/null || { echo "yurt server did not start; see $data/server.log" >&2; exit 1; }
else
  say "yurt server already running on $url"
fi

export YURT_URL="$url"
YURT_TOKEN=$(cat "$data/admin-token")
export YURT_TOKEN
export PATH="$bin:$PATH"

work="$data/work/hello-python"
if [ ! -d "$work/.git" ]; then
  mkdir -p "$work"
  cp -r "$root/examples/hello-python/." "$work/"
  git -C "$work" init -q --initial-branch=main
  git -C "$work" add -A
  git -C "$work" -c user.name=Yurt -c user.email=demo@yurt.invalid commit -q -m "Hello from Yurt"
fi
cd "$work"
if ! yurt apps:info -a hello >/dev/null 2>&1; then
  say "Creating the app: yurt apps:create hello"
  yurt apps:create hello
fi
git remote get-url yurt >/dev/null 2>&1 || git remote add yurt "$url/hello.git"
git -c user.name=Yurt -c user.email=demo@yurt.invalid commit -q --allow-empty -m "Demo push $(date -u +%FT%TZ)"

say "Pushing: git push yurt main"
git -c credential.helper= -c "credential.$url.helper=!$bin/yurt auth:git-credential" push yurt main

web_url=$(yurt apps:info -a hello --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["web_url"])')
say "Done. hello answers at $web_url:"
curl -fsS "$web_url/"
cat >&2 <<EOT

Next:
  cd $work
  yurt logs --tail         # the app's output, live
  yurt ps:scale web=2      # a second web process behind the router
  yurt releases            # every release; then: yurt rollback
  make stop                # stop the platform (apps included)
EOT
