# header-route (loadgen's own stage): /hello_b carrying `x-canary: 1` goes to service-b's
# subset v2 whatever the splitter says; the rest of /hello_b goes through the splitter.
# service-a propagates x-* headers to its upstream call, so a canary's --header reaches it.
Kind = "service-router"
Name = "service-a"
Routes = [
  {
    Match {
      HTTP {
        PathPrefix = "/hello_b"
        Header = [
          {
            Name  = "x-canary"
            Exact = "1"
          },
        ]
      }
    }
    Destination {
      Service       = "service-b"
      ServiceSubset = "v2"
    }
  },
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
