# Policy "yurt-app": what a Yurt app's tasks may read from Vault.
# Attached by the jwt-nomad role "yurt-app", which admits workload identities from two Nomad
# namespaces only: "yurt" (an app's service job, job ID = the app name) and "yurt-release" (its
# release-phase batch job, with the SAME job ID). Build jobs and cluster services run elsewhere
# and cannot log in; build jobs get their config from the controller.
# The path is templated on the identity's nomad_job_id claim, so each app's jobs read only their
# own secret, secret/data/yurt/apps/<app>, at any version (?version=N). Nothing else: no list,
# no write, no metadata.
# @JWT_ACCESSOR@ is replaced by the jwt-nomad auth method's accessor when the policy is written
# (`yurt admin:vault-setup`, controller/secrets/vault_setup.py; vagrant/provision/5-vault.sh).
path "secret/data/yurt/apps/{{identity.entity.aliases.@JWT_ACCESSOR@.metadata.nomad_job_id}}" {
  capabilities = ["read"]
}
