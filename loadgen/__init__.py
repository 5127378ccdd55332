"""loadgen: traffic load generator and canary verifier for Consul service mesh and Nomad."""

__version__ = "0.1.0"
