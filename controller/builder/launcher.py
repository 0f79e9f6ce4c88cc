"""The launcher every built image runs as its ENTRYPOINT (``/usr/local/bin/yurt-launch``).

The app job runs a process as ``args = ["/bin/sh", "-c", "<Procfile command>"]``; the image's
ENTRYPOINT wraps that, so this script prepares the environment the way a Heroku dyno (and the
local runtime) does: ``HOME`` and the working directory are ``/app``, ``.profile.d/*.sh`` and
``.profile`` are sourced (they set ``PATH`` for the app's virtualenv or node_modules, for
example), then the command is exec'd. ``images/stack/yurt-launch`` is a copy of this text
(a test keeps the two equal); the builder also writes it into every app layer, so any stack
image with a ``/bin/sh`` works.
"""

LAUNCHER_PATH = "/usr/local/bin/yurt-launch"

LAUNCHER = """\
#!/bin/sh
# yurt-launch: the ENTRYPOINT of images built by Yurt. Runs a command the way a Heroku dyno
# does: HOME=/app, cd /app, source .profile.d/*.sh and .profile, then exec the command
# (the app job passes it as: /bin/sh -c "<Procfile command>"). No command: a shell.
# shellcheck disable=SC1090,SC1091 # sources the app's own profile scripts
export HOME=/app
cd "$HOME" || exit 1
for f in .profile.d/*.sh; do
  if [ -f "$f" ]; then . "./$f"; fi
done
if [ -f .profile ]; then . ./.profile; fi
[ "$#" -gt 0 ] || set -- /bin/sh
exec "$@"
"""
