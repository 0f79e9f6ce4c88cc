# Policy "yurt-controller": the Yurt controller manages every app's config vars (one KV v2
# secret per app) and nothing else. The demo cluster gives the controller (a systemd unit on
# node1) a periodic token with this policy: vagrant/provision/7-yurt.sh.
path "secret/data/yurt/apps/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}

path "secret/metadata/yurt/apps/*" {
  capabilities = ["read", "list", "delete"]
}

path "secret/metadata/yurt/apps" {
  capabilities = ["list"]
}
