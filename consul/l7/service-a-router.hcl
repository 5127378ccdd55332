# The seed's L7 step: service-a calls its own virtual service on 127.0.0.1:9000 and
# its sidecar routes /hello_b to service-b; everything else stays on service-a.
Kind = "service-router"
Name = "service-a"
Routes = [
  {
    Match {
      HTTP {
        PathPrefix = "/hello_b"
      }
    }
    Destination {
      Service = "service-b"
    }
  },
]
