"""The harness: Consul API, stages, runtimes and toolchain lookup."""
