# shellcheck shell=bash
# Helpers shared by the Yurt buildpacks: file fingerprints, the signature-keyed directory
# cache, and config vars from ENV_DIR.
# Expects output.sh to be sourced first.

# sha256_of FILE: the file's SHA-256 in hex.
sha256_of() {
  sha256sum -- "$1" | cut -d' ' -f1
}

# buildpack_fingerprint DIR...: one SHA-256 over every file under DIRs (in a stable order),
# so any change to a buildpack's code invalidates the caches it wrote.
buildpack_fingerprint() {
  find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1
}

# --- directory cache ------------------------------------------------------------------------
# An entry is CACHE_DIR/<name>/{content/,signature}. The signature is a block of key=value
# lines describing everything the content was built from. It is written last and removed
# first, so an interrupted store never looks valid.

# cache_restore NAME DEST SIGNATURE: copy the cached content to DEST if the stored signature
# equals SIGNATURE and, for a linked entry, every file is still as it was stored (see
# cache_store --link); returns 1 (leaving DEST absent) if there is nothing usable.
cache_restore() {
  local entry="$CACHE_DIR/$1" dest=$2 signature=$3
  [[ -f "$entry/signature" && -d "$entry/content" ]] || return 1
  [[ "$(cat -- "$entry/signature")" == "$signature" ]] || return 1
  if [[ -f "$entry/manifest" ]] && [[ -n "$(cache_manifest "$entry/content" |
    LC_ALL=C comm -23 -- "$entry/manifest" -)" ]]; then
    return 1 # some stored entry changed or went away
  fi
  rm -rf -- "$dest"
  mkdir -p -- "$(dirname -- "$dest")"
  if ! cp -a -- "$entry/content" "$dest"; then
    rm -rf -- "$dest"
    return 1
  fi
}

# cache_store NAME SRC SIGNATURE [--link]: replace the entry with a copy of SRC.
#
# --link makes the copy with hard links (`cp -al`: a link per file instead of a copy of its
# data; a plain copy when that fails, e.g. across file systems), so until the build dir is
# removed each file is shared with SRC. For content that the rest of the build only reads or
# replaces (pip, Python's bytecode writes, sed -i and mv make new files, rm only unlinks) that
# is the same as a copy. A file rewritten in place (`>>`, truncate and write) would change the
# cached copy too: a manifest of every entry's path, type, mode, size and mtime (in seconds,
# which survives a tar round trip) is stored with linked content, and cache_restore treats an
# entry that differs or is gone as a cache miss, so such a change costs a rebuild, never a
# wrong restore. (Entries added to the cache's own directories can't come from the build's
# copy: directories are not shared.)
cache_store() {
  local entry="$CACHE_DIR/$1" src=$2 signature=$3 link=${4:-}
  mkdir -p -- "$entry"
  rm -f -- "$entry/signature"
  rm -rf -- "$entry/content" "$entry/content.partial" "$entry/manifest"
  if [[ "$link" != --link ]] || ! cp -al -- "$src" "$entry/content.partial" 2>/dev/null; then
    rm -rf -- "$entry/content.partial"
    cp -a -- "$src" "$entry/content.partial"
  fi
  mv -- "$entry/content.partial" "$entry/content"
  if [[ "$link" == --link ]]; then
    cache_manifest "$entry/content" >"$entry/manifest"
  fi
  printf '%s\n' "$signature" >"$entry/signature.partial"
  mv -- "$entry/signature.partial" "$entry/signature"
}

# cache_manifest DIR: one line per entry under DIR, in a stable order: path, type, mode, and
# for all but directories (never shared, and their sizes vary between copies) size and mtime
# in whole seconds.
cache_manifest() {
  (cd -- "$1" && find . \( -type d -printf '%P\td\t%m\n' \) -o -printf '%P\t%y\t%m\t%s\t%Ts\n' |
    LC_ALL=C sort)
}

# cache_changes NAME SIGNATURE: the keys whose value differs from the stored signature,
# comma separated ("requirements.txt, python"); empty when there is no stored signature.
cache_changes() {
  local stored="$CACHE_DIR/$1/signature" line changed=()
  [[ -f "$stored" ]] || return 0
  while IFS= read -r line; do
    grep -qxF -- "$line" "$stored" || changed+=("${line%%=*}")
  done <<<"$2"
  if ((${#changed[@]})); then
    local joined
    joined=$(printf '%s, ' "${changed[@]}")
    echo "${joined%, }"
  fi
}

# cache_forget NAME: drop an entry (its signature first).
cache_forget() {
  rm -f -- "$CACHE_DIR/$1/signature"
  rm -rf -- "${CACHE_DIR:?}/$1"
}

# --- config vars ----------------------------------------------------------------------------

# env_dir_value NAME: the config var's value from ENV_DIR (empty if unset).
env_dir_value() {
  local file="$ENV_DIR/$1"
  if [[ -f "$file" ]]; then
    cat -- "$file"
  fi
}

# export_env_dir: export every config var in ENV_DIR except those that would break the
# build environment itself (same deny-list idea as Heroku's Node.js buildpack).
export_env_dir() {
  local file name
  local deny='^(PATH|HOME|GIT_DIR|CPATH|CPPATH|LD_PRELOAD|LIBRARY_PATH|LD_LIBRARY_PATH|LANG|BUILD_DIR|CACHE_DIR|ENV_DIR|PYTHONHOME|STACK|SOURCE_VERSION)$'
  [[ -d "$ENV_DIR" ]] || return 0
  for file in "$ENV_DIR"/*; do
    [[ -f "$file" ]] || continue
    name=${file##*/}
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    [[ "$name" =~ $deny ]] && continue
    export "$name=$(cat -- "$file")"
  done
}
