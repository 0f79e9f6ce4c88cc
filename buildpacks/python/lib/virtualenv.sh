# shellcheck shell=bash
# The app's virtualenv at BUILD_DIR/.yurt/python (VENV_DIR), and what makes it relocatable:
# the slug is unpacked somewhere else, so nothing in it may refer to the build directory.

# create_virtualenv: a fresh venv made by the chosen interpreter (with its bundled pip).
create_virtualenv() {
  rm -rf -- "$VENV_DIR"
  mkdir -p -- "$(dirname -- "$VENV_DIR")"
  if bootstrap_virtualenv_quickly >/dev/null 2>&1; then
    return 0
  fi
  rm -rf -- "$VENV_DIR"
  if ! "$PYTHON_BIN" -m venv "$VENV_DIR" 2>&1 | indent; then
    fail "Could not create a virtualenv with $PYTHON_BIN (see the output above)." \
      "On Debian and Ubuntu hosts the venv module is a separate package: apt-get install python3-venv"
  fi
}

# What `python -m venv DIR` does after creating DIR (`DIR/bin/python -m ensurepip --upgrade
# --default-pip`: the interpreter's bundled pip, and setuptools up to 3.11), except that pip is
# told not to byte-compile them (--no-compile). Compiling pip's and setuptools' ~1500 modules
# is about half of the venv's creation time, and the app never imports them: pip compiles the
# modules it imports on its first run (the install below), the rest only if they are used.
# ensurepip drops PIP_* settings and pip.conf itself. Uses a private ensurepip function, so it
# checks for it, and the caller falls back to plain `python -m venv` on any failure.
ENSUREPIP_NO_COMPILE='
import sys
import ensurepip
run_pip = getattr(ensurepip, "_run_pip", None)
if run_pip is None or not hasattr(ensurepip, "bootstrap"):
    sys.exit("ensurepip has no _run_pip: using python -m venv")
def run_pip_no_compile(args, *rest, **kwargs):
    if not args or args[0] != "install":
        raise RuntimeError(f"unexpected ensurepip call: {args!r}")
    return run_pip(["install", "--no-compile", *args[1:]], *rest, **kwargs)
ensurepip._run_pip = run_pip_no_compile
ensurepip.bootstrap(upgrade=True, default_pip=True)
'

# bootstrap_virtualenv_quickly: `python -m venv --without-pip`, then pip (and setuptools where
# ensurepip has it) without byte-compiling them. Fails (and may leave a partial VENV_DIR) when
# the interpreter's ensurepip doesn't work that way.
bootstrap_virtualenv_quickly() {
  "$PYTHON_BIN" -m venv --without-pip "$VENV_DIR" &&
    "$VENV_DIR/bin/python" -c "$ENSUREPIP_NO_COMPILE" &&
    [[ -x "$VENV_DIR/bin/pip" ]]
}

# The launcher that replaces "#!<build dir>/.yurt/python/bin/python": a shell/Python polyglot
# (the form pip itself uses for long paths) that runs the python next to the script, wherever
# the venv now lives. Python sees the second and third lines as a no-op string literal.
RELOCATABLE_SHEBANG="#!/bin/sh
'''exec' \"\$(dirname -- \"\$(readlink -f -- \"\$0\")\")/python\" \"\$0\" \"\$@\"
' '''"

# make_virtualenv_relocatable: rewrite every script in VENV_DIR/bin whose interpreter is the
# venv's python given by absolute path (both the plain and pip's long-path form).
make_virtualenv_relocatable() {
  local script first second rest
  for script in "$VENV_DIR"/bin/*; do
    [[ -f "$script" && ! -L "$script" ]] || continue
    first=$(head -c 1024 -- "$script" | head -n 1 | tr -d '\0')
    if [[ "$first" == "#!$VENV_DIR/bin/python"* ]]; then
      rest=2
    elif [[ "$first" == "#!/bin/sh" ]]; then
      second=$(sed -n 2p -- "$script")
      [[ "$second" == "'''exec' $VENV_DIR/bin/python"* || "$second" == "'''exec' '$VENV_DIR/bin/python"* ]] || continue
      rest=4
    else
      continue
    fi
    { printf '%s\n' "$RELOCATABLE_SHEBANG" && tail -n +"$rest" -- "$script"; } >"$script.relocated"
    cat -- "$script.relocated" >"$script" # keeps the file's mode
    rm -f -- "$script.relocated"
  done
  warn_about_build_dir_references
}

# warn_about_build_dir_references: editable/path installs leave .pth files pointing at the
# build directory, which won't exist at run time.
warn_about_build_dir_references() {
  local pth_files=()
  mapfile -t pth_files < <(grep -lF -- "$BUILD_DIR" "$VENV_DIR"/lib/python*/site-packages/*.pth 2>/dev/null)
  if ((${#pth_files[@]})); then
    warning "These files refer to the build directory, which won't exist at run time:" \
      "${pth_files[@]#"$VENV_DIR"/}" \
      "They come from editable or local-path installs (-e ., ./pkg) in requirements.txt." \
      "List the app's dependencies instead: the app's own directory is on PYTHONPATH anyway."
  fi
}

# virtualenv_works: the (restored) venv's python starts.
virtualenv_works() {
  "$VENV_DIR/bin/python" -c "import sys" >/dev/null 2>&1
}

# write_python_profile: run-time environment, sourced before every process (paths via $HOME,
# which is the release directory at run time); config vars win over the defaults.
write_python_profile() {
  mkdir -p -- "$BUILD_DIR/.profile.d"
  cat >"$BUILD_DIR/.profile.d/python.sh" <<'PROFILE'
# Written by Yurt's Python buildpack: run the app with its virtualenv.
export VIRTUAL_ENV="$HOME/.yurt/python"
export PATH="$HOME/.yurt/python/bin:$PATH"
export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-1}"
export PYTHONPATH="${PYTHONPATH:-$HOME}"
export LANG="${LANG:-C.UTF-8}"
unset PYTHONHOME
PROFILE
}

# write_python_export: the same environment for later buildpacks in this build.
write_python_export() {
  # shellcheck disable=SC2016 # $PATH and ${...} are meant for the sourcing shell
  {
    printf 'export VIRTUAL_ENV=%q\n' "$VENV_DIR"
    printf 'export PATH=%q:"$PATH"\n' "$VENV_DIR/bin"
    echo 'export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-1}"'
    echo 'unset PYTHONHOME'
  } >"$BP_DIR/export"
}
