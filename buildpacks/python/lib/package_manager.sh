# shellcheck shell=bash
# Which Python package manager an app uses, which files pin its dependencies, and how to
# install them into the virtualenv VENV_DIR.
#
# Exactly one of requirements.txt (pip), uv.lock (uv) or poetry.lock (Poetry) must be present,
# as on Heroku. uv and Poetry themselves are installed from PyPI into CACHE_DIR/tools/, pinned.

UV_VERSION="0.13.9"
POETRY_VERSION="2.5.1"
POETRY_PLUGIN_EXPORT_VERSION="1.10.1"

# detect_package_manager: prints pip, uv or poetry, or fails with Heroku-like advice.
detect_package_manager() {
  local found=() name
  for name in Pipfile.lock requirements.txt poetry.lock uv.lock; do
    [[ -f "$BUILD_DIR/$name" ]] && found+=("$name")
  done

  if ((${#found[@]} > 1)); then
    fail "Multiple Python package manager files were found: ${found[*]}" \
      "" \
      "Yurt can't tell which one to use. Keep exactly one of:" \
      "  requirements.txt (pip), uv.lock (uv), poetry.lock (Poetry)" \
      "and delete the others."
  fi
  if ((${#found[@]} == 0)); then
    fail_no_package_manager
  fi

  case "${found[0]}" in
    requirements.txt) echo pip ;;
    uv.lock) require_pyproject uv.lock && echo uv ;;
    poetry.lock) require_pyproject poetry.lock && echo poetry ;;
    Pipfile.lock)
      fail "Pipenv (Pipfile.lock) is not supported by Yurt's Python buildpack." \
        "" \
        "Move the dependencies to uv (uv.lock), Poetry (poetry.lock) or pip (requirements.txt)," \
        "for example: pipenv requirements > requirements.txt"
      ;;
  esac
}

require_pyproject() {
  if [[ ! -f "$BUILD_DIR/pyproject.toml" ]]; then
    fail "$1 was found, but pyproject.toml is missing." \
      "Commit the pyproject.toml the lock file was generated from."
  fi
}

fail_no_package_manager() {
  local name
  for name in requirement.txt Requirements.txt requirements.text requirements.txt.txt requirments.txt; do
    if [[ -f "$BUILD_DIR/$name" ]]; then
      fail "Found '$name', but no requirements.txt. Rename it to requirements.txt."
    fi
  done
  if [[ -f "$BUILD_DIR/Pipfile" ]]; then
    fail "A Pipfile was found, but Pipenv is not supported (and there is no Pipfile.lock)." \
      "Use uv (uv.lock), Poetry (poetry.lock) or pip (requirements.txt) instead."
  fi
  if [[ -f "$BUILD_DIR/pyproject.toml" ]]; then
    fail "pyproject.toml was found, but no lock file." \
      "Commit uv.lock (run: uv lock) or poetry.lock (run: poetry lock)," \
      "or list the dependencies in requirements.txt."
  fi
  if [[ -f "$BUILD_DIR/setup.py" ]]; then
    fail "Implicit setup.py file support is not available." \
      "Add a requirements.txt containing a single line: --editable ." \
      "(note: editable installs point at the build directory; prefer listing the dependencies)."
  fi
  fail "Couldn't find any supported Python package manager files." \
    "" \
    "A Python app needs one of these at the root of its repository:" \
    "  requirements.txt (pip), uv.lock with pyproject.toml (uv), poetry.lock with pyproject.toml (Poetry)"
}

# dependency_files PACKAGE_MANAGER: the files whose content fully determines the install,
# one per line (used for the cache signature).
dependency_files() {
  case "$1" in
    pip) requirements_files requirements.txt ;;
    uv) printf '%s\n' pyproject.toml uv.lock ;;
    poetry) printf '%s\n' pyproject.toml poetry.lock ;;
  esac
}

# requirements_files FILE: FILE plus the files it includes with -r/-c (one level deep).
requirements_files() {
  local included
  printf '%s\n' "$1"
  sed -nE 's/^[[:space:]]*(-r|--requirement|-c|--constraint)[[:space:]=]+([^[:space:]]+).*/\2/p' \
    "$BUILD_DIR/$1" | while IFS= read -r included; do
    [[ -f "$BUILD_DIR/$included" ]] && printf '%s\n' "$included"
  done
}

# requirements_install_local_paths: true if requirements.txt installs from the app's own
# tree (editable or path installs); such a venv can't be reused on the next build.
requirements_install_local_paths() {
  grep -qE '^[[:space:]]*(-e|--editable)[[:space:]=]|^[[:space:]]*\.{1,2}(/|[[:space:]]|$)|file:' \
    "$BUILD_DIR/requirements.txt"
}

# tool_version PACKAGE_MANAGER: the installer's own version, part of the cache signature.
tool_version() {
  case "$1" in
    pip) echo "pip (bundled with Python $PYTHON_VERSION)" ;;
    uv) echo "uv $UV_VERSION" ;;
    poetry) echo "poetry $POETRY_VERSION (export $POETRY_PLUGIN_EXPORT_VERSION) + pip" ;;
  esac
}

# install_dependencies PACKAGE_MANAGER: install the locked dependencies into VENV_DIR.
install_dependencies() {
  case "$1" in
    pip) install_with_pip ;;
    uv) install_with_uv ;;
    poetry) install_with_poetry ;;
  esac
}

# pip_install ARGS...: the venv's pip, sharing its download/wheel cache across builds.
pip_install() {
  PIP_CACHE_DIR="$CACHE_DIR/pip" "$VENV_DIR/bin/python" -m pip install \
    --disable-pip-version-check --no-input --progress-bar off "$@"
}

install_with_pip() {
  step "Installing requirements with pip"
  if ! pip_install -r requirements.txt 2>&1 | indent; then
    fail "pip could not install the packages in requirements.txt (see the output above)."
  fi
}

# uv installs into the venv we made from the chosen interpreter (never a downloaded Python),
# copies files out of its cache (hardlinks would tie the slug to CACHE_DIR), trusts the host's
# certificate store like pip and npm do, and leaves out every non-default dependency group.
install_with_uv() {
  local uv
  uv=$(ensure_uv)
  step "Installing dependencies from uv.lock with uv $UV_VERSION"
  if ! UV_PROJECT_ENVIRONMENT="$VENV_DIR" UV_CACHE_DIR="$CACHE_DIR/uv" UV_PYTHON="$PYTHON_BIN" \
    UV_PYTHON_DOWNLOADS=never UV_NO_MANAGED_PYTHON=1 UV_LINK_MODE=copy UV_NO_PROGRESS=1 \
    UV_SYSTEM_CERTS=1 \
    "$uv" sync --locked --no-default-groups --no-editable --compile-bytecode 2>&1 | indent; then
    fail "uv could not install the dependencies in uv.lock (see the output above)." \
      "If uv.lock is out of date, run 'uv lock' locally and commit the result."
  fi
}

install_with_poetry() {
  local poetry_python requirements
  poetry_python=$(ensure_poetry)
  step "Installing dependencies from poetry.lock (Poetry $POETRY_VERSION export, then pip)"
  requirements="$CACHE_DIR/python/requirements-from-poetry.txt"
  mkdir -p -- "$(dirname -- "$requirements")"
  # Export the locked main group (with hashes) and let pip install exactly that: it only needs
  # PyPI's simple index, and never installs the app itself in editable (path-bound) mode.
  if ! POETRY_CACHE_DIR="$CACHE_DIR/poetry" POETRY_VIRTUALENVS_CREATE=false POETRY_NO_INTERACTION=1 \
    "$poetry_python" -m poetry export --only main --format requirements.txt \
    --output "$requirements" 2>&1 | indent; then
    fail "Poetry could not read poetry.lock (see the output above)." \
      "If poetry.lock is out of date, run 'poetry lock' locally and commit the result."
  fi
  if ! pip_install --no-deps -r "$requirements" 2>&1 | indent; then
    fail "pip could not install the packages locked in poetry.lock (see the output above)."
  fi
  rm -f -- "$requirements"
}

# install_tool_venv DIR PACKAGES...: (re)create a tools virtualenv in the build cache. Progress
# goes to stderr: stdout is reserved for the callers' return values.
install_tool_venv() {
  local dir=$1
  shift
  step "Installing $* into the build cache" >&2
  rm -rf -- "$dir"
  if ! { "$PYTHON_BIN" -m venv "$dir" &&
    PIP_CACHE_DIR="$CACHE_DIR/pip" "$dir/bin/python" -m pip install --quiet \
      --disable-pip-version-check --no-input --progress-bar off "$@"; } 2>&1 | indent >&2; then
    rm -rf -- "$dir"
    fail "Could not install $* from PyPI (see the output above)."
  fi
}

# ensure_uv: prints the path of a working uv binary (installed on first use).
ensure_uv() {
  local dir="$CACHE_DIR/tools/uv-$UV_VERSION"
  if ! "$dir/bin/uv" --version >/dev/null 2>&1; then
    install_tool_venv "$dir" "uv==$UV_VERSION"
  fi
  echo "$dir/bin/uv"
}

# ensure_poetry: prints the path of a python that has Poetry and its export plugin. Poetry is
# run as `python -m poetry` so the tools venv keeps working if the cache directory moves.
ensure_poetry() {
  local dir="$CACHE_DIR/tools/poetry-$POETRY_VERSION"
  if ! "$dir/bin/python" -c "import poetry.console.application, poetry_plugin_export" >/dev/null 2>&1; then
    install_tool_venv "$dir" "poetry==$POETRY_VERSION" "poetry-plugin-export==$POETRY_PLUGIN_EXPORT_VERSION"
  fi
  echo "$dir/bin/python"
}
