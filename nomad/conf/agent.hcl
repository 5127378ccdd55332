# Single-node Nomad agent (server + client) for the local mesh's nomad runtime.
# Started by `loadgen up --runtime nomad` as:
#   nomad agent -config nomad/conf/agent.hcl -config <run dir>/nomad/local.json
# local.json adds what depends on this run: data_dir and the harness's Consul address.
#
# Everything Nomad itself serves binds and advertises 127.0.0.1. Connect needs bridge
# networking: every allocation gets a network namespace on the bridge below, and the
# apps and sidecars inside it reach Consul through the unix sockets Nomad puts in the
# allocation directory. Root only (CNI creates namespaces, veths and iptables rules).
datacenter           = "dc1"
name                 = "loadgen-nomad"
bind_addr            = "127.0.0.1"
log_level            = "INFO"
disable_update_check = true

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

ports {
  http = 4646
  rpc  = 4647
  serf = 4648
}

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled = true
  # Ports published to the host (service-a's 3000, the sidecars' Envoy admin) land on 127.0.0.1.
  network_interface = "lo"
  cni_path          = "/usr/lib/cni"

  # The bridge and subnet are ours, not Nomad's defaults, so they cannot collide with
  # another Nomad on this machine. The runtime creates the bridge before the agent starts.
  bridge_network_name   = "loadgen-nomad"
  bridge_network_subnet = "10.213.77.0/24"

  # Sidecar-to-sidecar traffic cannot use 127.0.0.1: inside an allocation's namespace it is
  # that namespace's own loopback. Sidecars therefore publish their mTLS port on the
  # bridge's gateway address, which every namespace on the bridge (and the host) can reach.
  host_network "mesh" {
    interface = "loadgen-nomad"
  }

  # No artifact downloads, no images: the services and Envoy run as local processes.
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

telemetry {
  disable_hostname = true
}
