# shellcheck shell=bash
# Build output in the format Heroku and Dokku users already read: "-----> " step headings,
# detail lines indented by 7 spaces, and warning/error blocks prefixed with " !     ".
# Sourced by every Yurt buildpack's bin/ scripts.

# step TEXT: a new build step.
step() {
  printf -- '-----> %s\n' "$*"
}

# detail TEXT: a line that belongs to the current step.
detail() {
  printf -- '       %s\n' "$*"
}

# indent: filter a command's output into detail lines, line by line as it arrives.
indent() {
  sed -u 's/^/       /'
}

# warning LINE...: a warning block on stderr; the build goes on.
warning() {
  local line
  {
    echo
    for line in "$@"; do
      printf -- ' !     %s\n' "$line"
    done
    echo
  } >&2
}

# fail LINE...: an error block on stderr, then the build stops (exit 1).
fail() {
  local line
  {
    echo
    for line in "$@"; do
      printf -- ' !     %s\n' "$line"
    done
    echo
  } >&2
  exit 1
}
