# Policy "yurt-app": what a Yurt app's tasks may read from Vault.
# Attached by the jwt-nomad role "yurt-app". The path is templated on the identity's
# nomad_job_id claim (an app's job ID is the app name), so each app reads only its own secret,
# secret/data/yurt/apps/<app>, at any version (?version=N). Nothing else: no list, no write.
# @JWT_ACCESSOR@ is replaced by the jwt-nomad auth method's accessor when the policy is written
# (vagrant/provision/5-vault.sh).
path "secret/data/yurt/apps/{{identity.entity.aliases.@JWT_ACCESSOR@.metadata.nomad_job_id}}" {
  capabilities = ["read"]
}
