# shellcheck shell=sh
# Point the nomad, consul and vault CLIs at this cluster in `vagrant ssh` sessions.
# Installed as /etc/profile.d/yurt-cluster.sh by the Yurt demo cluster's provisioning.
export NOMAD_ADDR="http://127.0.0.1:4646"
export CONSUL_HTTP_ADDR="127.0.0.1:8500"
export VAULT_ADDR="http://@SERVER_IP@:8200"
