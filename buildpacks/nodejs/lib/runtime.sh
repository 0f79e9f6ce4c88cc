# shellcheck shell=bash
# What a built Node.js app needs at run time (.profile.d/nodejs.sh, paths via $HOME, which is
# the release directory then) and what later buildpacks of this build need (the `export` file).
# The single-quoted $VARs below are meant for the shell that sources these files.

# ship_package_manager: Procfiles often say `yarn start`, so the Yarn the build installed
# (5 MB) is copied into the app as .yurt/yarn. pnpm (about 70 MB) is not: `npm start` runs
# the same package.json scripts. npm comes with the host's node.
ship_package_manager() {
  case "$PM" in
    yarn)
      rm -rf -- "$BUILD_DIR/.yurt/yarn"
      mkdir -p -- "$BUILD_DIR/.yurt"
      cp -a -- "$PM_TOOL_DIR" "$BUILD_DIR/.yurt/yarn"
      ;;
    pnpm)
      detail "pnpm is not shipped with the app: start processes with npm start (the default) or node."
      ;;
  esac
}

# write_node_profile: PATH gets the app's node_modules/.bin (and the shipped yarn);
# NODE_ENV defaults to production unless a config var says otherwise.
# shellcheck disable=SC2016
write_node_profile() {
  mkdir -p -- "$BUILD_DIR/.profile.d"
  {
    echo "# Written by Yurt's Node.js buildpack."
    echo 'export PATH="$HOME/node_modules/.bin:$PATH"'
    if [[ "$PM" == yarn ]]; then
      echo 'export PATH="$HOME/.yurt/yarn/bin:$PATH"'
    fi
    echo 'export NODE_ENV="${NODE_ENV:-production}"'
  } >"$BUILD_DIR/.profile.d/nodejs.sh"
}

# write_node_export: the same, with build-directory paths, for later buildpacks.
# shellcheck disable=SC2016
write_node_export() {
  {
    printf 'export PATH=%q:"$PATH"\n' "$BUILD_DIR/node_modules/.bin"
    if [[ "$PM" != npm ]]; then
      printf 'export PATH=%q:"$PATH"\n' "$PM_TOOL_DIR/bin"
    fi
    echo 'export NODE_ENV="${NODE_ENV:-production}"'
  } >"$BP_DIR/export"
}
