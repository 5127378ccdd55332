# Consul dev agent for the local mesh: everything bound to and advertised on loopback.
# Started by `loadgen up` as: consul agent -dev -config-file consul/agent.hcl
datacenter     = "dc1"
node_name      = "loadgen-dev"
bind_addr      = "127.0.0.1"
advertise_addr = "127.0.0.1"
client_addr    = "127.0.0.1"
log_level      = "INFO"

ports {
  http     = 8500
  grpc     = 8502
  dns      = 8600
  serf_lan = 8301
  serf_wan = 8302
  server   = 8300
}

connect {
  enabled = true
}

ui_config {
  enabled = false
}
