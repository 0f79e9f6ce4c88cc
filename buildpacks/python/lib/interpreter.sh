# shellcheck shell=bash
# shellcheck disable=SC2034 # the PYTHON_* variables set here are read by bin/compile
# Choosing the build host's Python interpreter for an app.
#
# The app asks for a version in runtime.txt (`python-X.Y[.Z]`, deprecated) or .python-version
# (`X.Y` or `X.Y.Z`). We never download Python: we look for `pythonX.Y` in the directories of
# PATH, then in YURT_PYTHON_SEARCH_PATH (extra bin directories the operator may list, colon
# separated). An X.Y.Z request needs that exact patch version. No request: `python3` on PATH.
#
# Sets PYTHON_REQUESTED, PYTHON_REQUESTED_BY, and after find_python: PYTHON_BIN (the real
# interpreter path, as the interpreter reports it) and PYTHON_VERSION (X.Y.Z).

PYTHON_VERSION_PATTERN='^[0-9]+\.[0-9]+(\.[0-9]+)?$'

# read_requested_python_version: sets PYTHON_REQUESTED/PYTHON_REQUESTED_BY (empty if none).
read_requested_python_version() {
  PYTHON_REQUESTED=""
  PYTHON_REQUESTED_BY=""
  if [[ -f "$BUILD_DIR/runtime.txt" ]]; then
    read_runtime_txt
  elif [[ -f "$BUILD_DIR/.python-version" ]]; then
    read_python_version_file
  fi
}

read_runtime_txt() {
  local content
  content=$(tr -d '[:space:]' <"$BUILD_DIR/runtime.txt")
  if [[ ! "$content" =~ ^python-([0-9]+\.[0-9]+(\.[0-9]+)?)$ ]]; then
    fail "Invalid Python version in runtime.txt: '$content'" \
      "It must look like python-3.12 or python-3.12.4." \
      "runtime.txt is deprecated: prefer a .python-version file containing e.g. 3.12."
  fi
  PYTHON_REQUESTED=${BASH_REMATCH[1]}
  PYTHON_REQUESTED_BY="runtime.txt"
  warning "runtime.txt is deprecated; replace it with a .python-version file containing: $PYTHON_REQUESTED"
}

read_python_version_file() {
  local versions=()
  # Whole-line comments and blank lines are ignored; surrounding whitespace is trimmed.
  mapfile -t versions < <(sed -e 's/\r$//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
    -e '/^#/d' -e '/^$/d' "$BUILD_DIR/.python-version")
  if ((${#versions[@]} == 0)); then
    fail "No Python version found in .python-version." \
      "Put one version on a line of its own, for example: 3.12"
  fi
  if ((${#versions[@]} > 1)); then
    fail "Multiple Python versions found in .python-version: ${versions[*]}" \
      "Keep exactly one version, for example: 3.12"
  fi
  if [[ ! "${versions[0]}" =~ $PYTHON_VERSION_PATTERN ]]; then
    fail "Invalid Python version in .python-version: '${versions[0]}'" \
      "Use a major.minor version (recommended), e.g. 3.12, or an exact one, e.g. 3.12.4."
  fi
  PYTHON_REQUESTED=${versions[0]}
  PYTHON_REQUESTED_BY=".python-version"
}

# python_search_dirs: PATH's directories, then YURT_PYTHON_SEARCH_PATH's, once each.
python_search_dirs() {
  local dir seen=":"
  local -a dirs
  IFS=: read -ra dirs <<<"${PATH}:${YURT_PYTHON_SEARCH_PATH:-}"
  for dir in "${dirs[@]}"; do
    [[ -n "$dir" && -d "$dir" && "$seen" != *":$dir:"* ]] || continue
    seen+="$dir:"
    printf '%s\n' "$dir"
  done
}

# probe_python CANDIDATE: prints "X.Y.Z<TAB>sys.executable" if CANDIDATE runs. Probed from /
# without PYENV_VERSION so a pyenv shim answers for the host, not for the app's .python-version.
probe_python() {
  (
    cd / && unset PYENV_VERSION &&
      timeout 20 "$1" -c 'import sys; print("%d.%d.%d\t%s" % (*sys.version_info[:3], sys.executable))'
  ) 2>/dev/null
}

# version_matches VERSION REQUESTED: X.Y requests match any patch, X.Y.Z requests exactly.
version_matches() {
  local version=$1 requested=$2
  if [[ -z "$requested" ]]; then
    return 0
  elif [[ "$requested" =~ ^[0-9]+\.[0-9]+$ ]]; then
    [[ "$version" == "$requested".* ]]
  else
    [[ "$version" == "$requested" ]]
  fi
}

# find_python: sets PYTHON_BIN and PYTHON_VERSION, or returns 1.
find_python() {
  local name=python3 dir info
  if [[ -n "$PYTHON_REQUESTED" ]]; then
    name="python$(cut -d. -f1,2 <<<"$PYTHON_REQUESTED")"
  fi
  while IFS= read -r dir; do
    [[ -x "$dir/$name" && ! -d "$dir/$name" ]] || continue
    info=$(probe_python "$dir/$name") || continue
    if version_matches "${info%%$'\t'*}" "$PYTHON_REQUESTED"; then
      PYTHON_VERSION=${info%%$'\t'*}
      PYTHON_BIN=${info#*$'\t'}
      [[ -x "$PYTHON_BIN" ]] || PYTHON_BIN="$dir/$name"
      return 0
    fi
  done < <(python_search_dirs)
  return 1
}

# available_pythons: "3.11.7 (/usr/bin/python3.11), ..." for every working python3.N found.
available_pythons() {
  local dir candidate info real seen=":" found=()
  while IFS= read -r dir; do
    for candidate in "$dir"/python3.*; do
      [[ "${candidate##*/}" =~ ^python3\.[0-9]+$ && -x "$candidate" ]] || continue
      real=$(readlink -f -- "$candidate")
      [[ "$seen" != *":$real:"* ]] || continue
      seen+="$real:"
      info=$(probe_python "$candidate") || continue
      found+=("${info%%$'\t'*} ($candidate)")
    done
  done < <(python_search_dirs)
  if ((${#found[@]} == 0)); then
    echo "no python3.N interpreter at all"
  else
    local joined
    joined=$(printf '%s, ' "${found[@]}")
    echo "${joined%, }"
  fi
}

# select_python: find the interpreter or fail with what the host does have.
select_python() {
  read_requested_python_version
  if find_python; then
    return 0
  fi
  if [[ -z "$PYTHON_REQUESTED" ]]; then
    fail "No python3 interpreter was found on this build host's PATH." \
      "Ask the operator to install Python 3, or to list its bin directory in YURT_PYTHON_SEARCH_PATH."
  fi
  local eol=""
  if [[ "$(printf '%s\n' "$PYTHON_REQUESTED" 3.10 | sort -V | head -n1)" != 3.10 ]]; then
    eol="Python $PYTHON_REQUESTED has also reached its end of life: choose 3.10 or newer."
  fi
  fail "Python $PYTHON_REQUESTED was requested by $PYTHON_REQUESTED_BY, but this build host only has: $(available_pythons)" \
    ${eol:+"$eol"} \
    "" \
    "Change $PYTHON_REQUESTED_BY to one of these versions (X.Y is enough, e.g. $(default_python_hint))," \
    "or ask the operator to install Python $PYTHON_REQUESTED on the build host" \
    "(extra interpreter directories can be listed in YURT_PYTHON_SEARCH_PATH)."
}

# default_python_hint: X.Y of the host's python3, for the error message above.
default_python_hint() {
  local info
  if info=$(probe_python python3); then
    cut -d. -f1,2 <<<"${info%%$'\t'*}"
  else
    echo "3.12"
  fi
}
