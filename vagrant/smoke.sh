#!/usr/bin/env bash
# Smoke test of the demo cluster from the host (the live tier runs it: tests/live,
# YURT_LIVE_SMOKE=1 make test-live). Needs a provisioned cluster (`vagrant up`), git and curl
# on the host, and the yurt CLI (YURT_CLI, else yurt on PATH, else .venv/bin/yurt).
#
# It does what docs/cluster.md, "What a user does", describes, and stops at the first failure
# with a message saying what failed:
#   1. log in (vagrant/yurt-login), into a throwaway CLI config and git config;
#   2. create an app from examples/hello-python in a temporary git repo and git push it;
#   3. curl it through Traefik until it answers 200;
#   4. config:set, and check that a new release with that change is live and serving;
#   5. ps:scale web=3, and check that `yurt ps` shows three web processes up;
#   6. rollback, and check that the rollback release is live and serving;
#   7. check that `yurt logs` prints something;
#   8. destroy the app.
# Every wait has a deadline. The app is destroyed on failure too, unless YURT_SMOKE_KEEP=1.
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Deadlines, in seconds.
PUSH_TIMEOUT=${YURT_SMOKE_PUSH_TIMEOUT:-1200} # first build: pip downloads, image assembly
CMD_TIMEOUT=${YURT_SMOKE_CMD_TIMEOUT:-600}    # one CLI command (config:set, rollback deploy)
WAIT_TIMEOUT=${YURT_SMOKE_WAIT_TIMEOUT:-300}  # routing, scaling, logs

step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n==> smoke %s: %s\n' "$step_no" "$*"
}

fail() {
  printf '\nsmoke: FAILED at step %s: %s\n' "$step_no" "$*" >&2
  exit 1
}
trap 'fail "command exited with status $? (line $LINENO): $BASH_COMMAND"' ERR

# run_for SECONDS COMMAND...: COMMAND, stopped (and failed) after SECONDS.
run_for() {
  local seconds=$1 pid watcher rc=0
  shift
  "$@" &
  pid=$!
  (
    sleep "$seconds"
    kill -TERM "$pid" 2>/dev/null
  ) &
  watcher=$!
  wait "$pid" || rc=$?
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  return "$rc"
}

# eventually SECONDS WHAT COMMAND...: run COMMAND every 3 s until it succeeds, or fail saying
# WHAT did not happen in time.
eventually() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what"
    sleep 3
  done
}

for tool in vagrant git curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed on this machine"
done
YURT_CLI=${YURT_CLI:-}
if [[ -z $YURT_CLI ]]; then
  if command -v yurt >/dev/null; then
    YURT_CLI=$(command -v yurt)
  elif [[ -x $root/.venv/bin/yurt ]]; then
    YURT_CLI=$root/.venv/bin/yurt
  else
    fail "no yurt CLI: pip install $root (or make venv), or set YURT_CLI"
  fi
fi
export YURT_CLI
# Every `yurt ...` below is the real CLI, with a deadline.
yurt() {
  run_for "$CMD_TIMEOUT" "$YURT_CLI" "$@"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/yurt-smoke.XXXXXX")
app="smoke-$(date +%s)"
created=0
cleanup() {
  local rc=$?
  trap - ERR
  if ((created)) && [[ ${YURT_SMOKE_KEEP:-0} != 1 ]]; then
    (cd "$work/app" && yurt apps:destroy "$app" --confirm "$app") >/dev/null 2>&1 ||
      printf 'smoke: could not destroy %s; remove it with: yurt apps:destroy %s --confirm %s\n' \
        "$app" "$app" "$app" >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# The CLI config and git's global config of this run only: the user's are left alone. Git runs
# the credential helper `yurt login` installs, which reads the same XDG_CONFIG_HOME.
export XDG_CONFIG_HOME=$work/config GIT_CONFIG_GLOBAL=$work/gitconfig
export GIT_AUTHOR_NAME="Yurt smoke test" GIT_AUTHOR_EMAIL="smoke@yurt.invalid"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export NO_COLOR=1
touch "$GIT_CONFIG_GLOBAL"

step "log in (vagrant/yurt-login)"
run_for 300 "$root/vagrant/yurt-login" >"$work/login.out" || {
  cat "$work/login.out" >&2
  fail "vagrant/yurt-login failed"
}
yurt apps >/dev/null || fail "the CLI cannot list apps after logging in"

step "create $app from examples/hello-python and git push it"
cp -R "$root/examples/hello-python" "$work/app"
cd "$work/app"
git init -q
git checkout -q -b main
git add .
git commit -q -m "Smoke test deploy"
yurt apps:create "$app" || fail "apps:create $app failed"
created=1
git remote get-url yurt >/dev/null || fail "apps:create did not add the 'yurt' git remote"
run_for "$PUSH_TIMEOUT" git push yurt main || fail "git push yurt main failed (build or deploy)"

# The app's URL as the controller gives it, reached through Traefik on node1 whatever the
# host's DNS thinks of the base domain (curl --resolve).
web_url=$(yurt apps:info -a "$app" | sed -n 's/^Web URL:[[:space:]]*//p')
[[ $web_url =~ ^http://([a-z0-9.-]+)/?$ ]] || fail "apps:info gave no http:// web URL (got '$web_url')"
host=${BASH_REMATCH[1]}
api_url=$(git remote get-url yurt)
[[ $api_url =~ ^http://([0-9.]+): ]] || fail "the git remote is not http://NODE1_IP:PORT/... (got '$api_url')"
node_ip=${BASH_REMATCH[1]}

serves() {
  curl -fsS --max-time 10 --resolve "$host:80:$node_ip" "http://$host/" | grep -q "Hello from Yurt"
}

step "curl http://$host/ through Traefik until it answers 200"
eventually "$WAIT_TIMEOUT" "http://$host/ to answer 200 with 'Hello from Yurt'" serves
echo "http://$host/ answers: $(curl -fsS --max-time 10 --resolve "$host:80:$node_ip" "http://$host/")"

# The current release's description, e.g. "Set SMOKE_CHECK config vars".
current_is() {
  local info
  info=$(yurt releases:info current -a "$app")
  grep -qE '^Status:[[:space:]]+succeeded \(current\)' <<<"$info" &&
    grep -qE "^Description:[[:space:]]+$1" <<<"$info"
}

# hello-python does not print its config, so this checks that the change made a new release
# that is live, and that the app still serves.
step "config:set, then a new release is live"
yurt config:set -a "$app" SMOKE_CHECK="$app" || fail "config:set failed"
eventually "$WAIT_TIMEOUT" "a live release 'Set SMOKE_CHECK config vars'" current_is "Set SMOKE_CHECK"
yurt config -a "$app" | grep -q "SMOKE_CHECK" || fail "yurt config does not list SMOKE_CHECK"
eventually "$WAIT_TIMEOUT" "http://$host/ to serve the new release" serves

web_up() {
  [[ $(yurt ps -a "$app" | grep -cE '^web\.[0-9]+: up ') == 3 ]]
}
step "ps:scale web=3, then yurt ps shows 3 web processes up"
yurt ps:scale -a "$app" web=3 || fail "ps:scale web=3 failed"
eventually "$WAIT_TIMEOUT" "yurt ps to show 3 web processes up" web_up
yurt ps -a "$app"

step "rollback, then the rollback release is live"
yurt rollback -a "$app" || fail "rollback failed"
eventually "$WAIT_TIMEOUT" "a live release 'Rollback to v...'" current_is "Rollback to v[0-9]+"
eventually "$WAIT_TIMEOUT" "http://$host/ to serve after the rollback" serves
yurt releases -a "$app"

has_logs() {
  [[ -n $(yurt logs -a "$app" -n 20) ]]
}
step "yurt logs prints the app's output"
eventually "$WAIT_TIMEOUT" "yurt logs to print something" has_logs
yurt logs -a "$app" -n 5

step "destroy $app"
yurt apps:destroy "$app" --confirm "$app" || fail "apps:destroy failed"
created=0
if yurt apps | grep -qw "$app"; then
  fail "$app is still listed by yurt apps after apps:destroy"
fi

printf '\nsmoke: PASSED (app %s: push, route, config, scale, rollback, logs, destroy)\n' "$app"
