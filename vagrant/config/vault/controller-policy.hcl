# Policy "yurt-controller": the Yurt controller manages every app's config vars (one KV v2
# secret per app) and nothing else. A token with this policy is issued for the controller
# when its job is added (issue #5).
path "secret/data/yurt/apps/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}

path "secret/metadata/yurt/apps/*" {
  capabilities = ["read", "list", "delete"]
}

path "secret/metadata/yurt/apps" {
  capabilities = ["list"]
}
