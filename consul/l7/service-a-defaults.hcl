# service-a speaks HTTP: its sidecar gets an HTTP connection manager, so L7 routing applies.
Kind     = "service-defaults"
Name     = "service-a"
Protocol = "http"
