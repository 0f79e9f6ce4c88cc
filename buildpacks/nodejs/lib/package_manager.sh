# shellcheck shell=bash
# The app's Node.js package manager (npm, Yarn classic or pnpm), chosen by its lockfile, and
# the commands bin/compile runs with it. Yarn and pnpm come from the npm registry, pinned
# (or the version package.json's packageManager field names), installed into CACHE_DIR/tools.
#
# Sets PM (npm|yarn|pnpm), PM_VERSION, PM_LOCKFILE (may be empty for npm), PM_BIN.

YARN_DEFAULT_VERSION="1.22.22"
PNPM_DEFAULT_VERSION="12.21.0"

package_json_get() {
  node "$BP_DIR/lib/package_json.js" get "$BUILD_DIR/package.json" "$1"
}

package_json_has_script() {
  node "$BP_DIR/lib/package_json.js" has-script "$BUILD_DIR/package.json" "$1"
}

# detect_package_manager: sets PM and PM_LOCKFILE, or fails when lockfiles disagree.
detect_package_manager() {
  local found=() name
  for name in package-lock.json npm-shrinkwrap.json yarn.lock pnpm-lock.yaml; do
    [[ -f "$BUILD_DIR/$name" ]] && found+=("$name")
  done
  if ((${#found[@]} > 1)); then
    fail "Multiple lockfiles found: ${found[*]}" \
      "" \
      "Each package manager writes its own lockfile, so Yurt can't tell which one this app uses." \
      "Keep the lockfile of the package manager you use and delete the others:" \
      "  package-lock.json (npm), yarn.lock (Yarn), pnpm-lock.yaml (pnpm)"
  fi
  PM_LOCKFILE=${found[0]:-}
  case "$PM_LOCKFILE" in
    yarn.lock) PM=yarn ;;
    pnpm-lock.yaml) PM=pnpm ;;
    *) PM=npm ;;
  esac

  local declared
  declared=$(package_json_get packageManager)
  if [[ -n "$declared" && "${declared%%@*}" != "$PM" ]]; then
    fail "package.json declares \"packageManager\": \"$declared\", but the lockfile is ${PM_LOCKFILE:-missing (npm)}." \
      "Make them agree: commit the lockfile of ${declared%%@*}, or fix the packageManager field."
  fi
}

# requested_tool_version DEFAULT: the version from packageManager ("yarn@1.22.19+sha…") or an
# exact engines.<pm>, else DEFAULT.
requested_tool_version() {
  local declared engines
  declared=$(package_json_get packageManager)
  if [[ "$declared" == "$PM@"* ]]; then
    declared=${declared#*@}
    echo "${declared%%+*}"
    return
  fi
  engines=$(package_json_get "engines.$PM")
  if [[ "$engines" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "$engines"
  else
    echo "$1"
  fi
}

# setup_package_manager: sets PM_VERSION and PM_BIN, installing Yarn/pnpm when needed.
setup_package_manager() {
  case "$PM" in
    npm)
      PM_BIN=$(command -v npm) || fail "npm was not found on this build host's PATH."
      PM_VERSION=$(npm --version)
      ;;
    yarn)
      PM_VERSION=$(requested_tool_version "$YARN_DEFAULT_VERSION")
      if [[ ! "$PM_VERSION" =~ ^1\. ]]; then
        fail "Yarn $PM_VERSION was requested, but only Yarn classic (1.x) is supported." \
          "Set \"packageManager\": \"yarn@$YARN_DEFAULT_VERSION\" or switch to npm or pnpm."
      fi
      install_tool yarn "$PM_VERSION"
      ;;
    pnpm)
      PM_VERSION=$(requested_tool_version "$PNPM_DEFAULT_VERSION")
      install_tool pnpm "$PM_VERSION"
      ;;
  esac
}

# install_tool NAME VERSION: NAME@VERSION from the npm registry into CACHE_DIR/tools (reused
# by later builds); sets PM_BIN and PM_TOOL_DIR.
install_tool() {
  local name=$1 version=$2
  PM_TOOL_DIR="$CACHE_DIR/tools/$name-$version"
  PM_BIN="$PM_TOOL_DIR/bin/$name"
  if [[ "$("$PM_BIN" --version 2>/dev/null)" == "$version" ]]; then
    return 0
  fi
  step "Installing $name $version from the npm registry"
  rm -rf -- "$PM_TOOL_DIR"
  # --prefix would also move npm's global config (and with it e.g. the host's cafile), so the
  # host's global config file is named explicitly.
  if ! npm install --global --prefix "$PM_TOOL_DIR" --globalconfig "$(npm config get globalconfig)" \
    --ignore-scripts --no-audit --no-fund "$name@$version" 2>&1 | indent; then
    rm -rf -- "$PM_TOOL_DIR"
    fail "Could not install $name $version from the npm registry (see the output above)."
  fi
}

# pm_install: install every dependency, devDependencies included (the build may need them;
# they are pruned afterwards), exactly as locked when there is a lockfile.
pm_install() {
  case "$PM" in
    npm)
      if [[ -n "$PM_LOCKFILE" ]]; then
        npm ci --include=dev --no-audit --no-fund
      else
        npm install --include=dev --no-audit --no-fund
      fi
      ;;
    yarn)
      "$PM_BIN" install --frozen-lockfile --production=false --non-interactive --no-progress \
        --cache-folder "$CACHE_DIR/yarn"
      ;;
    pnpm)
      # Copies, not hard links into the store: a build step that edits a file in node_modules
      # must not corrupt the cached store.
      "$PM_BIN" install --frozen-lockfile --prod=false --store-dir "$CACHE_DIR/pnpm-store" \
        --package-import-method copy
      ;;
  esac
}

# pm_prune: remove devDependencies from node_modules.
pm_prune() {
  case "$PM" in
    npm) npm prune --omit=dev --no-audit --no-fund ;;
    yarn)
      "$PM_BIN" install --frozen-lockfile --production=true --ignore-scripts --prefer-offline \
        --non-interactive --no-progress --cache-folder "$CACHE_DIR/yarn"
      ;;
    pnpm) "$PM_BIN" prune --prod --store-dir "$CACHE_DIR/pnpm-store" ;;
  esac
}

# pm_run SCRIPT: run a package.json script with the app's package manager.
pm_run() {
  case "$PM" in
    npm) npm run "$1" ;;
    *) "$PM_BIN" run "$1" ;;
  esac
}

# pm_command_line: how the install is described in the build output.
pm_command_line() {
  case "$PM" in
    npm) [[ -n "$PM_LOCKFILE" ]] && echo "npm ci" || echo "npm install" ;;
    yarn) echo "yarn install --frozen-lockfile" ;;
    pnpm) echo "pnpm install --frozen-lockfile" ;;
  esac
}
