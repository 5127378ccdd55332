# `loadgen intentions --permissions`: L7 permissions for service-a -> service-b (service-b at
# protocol http). Envoy's RBAC takes the first permission that matches, so the order matters:
#   GET /hello_b with an x-debug header    denied (a header rule; a leak would answer 200)
#   GET /hello_b (exactly)                 allowed
#   anything else (POST /hello_b, GET /hello_b/admin, ...)   denied
# The last rule is explicit because a request no permission matches falls back to the default
# intention behaviour, which is "allow" on an agent with ACLs off.
Kind = "service-intentions"
Name = "service-b"
Sources = [
  {
    Name = "service-a"
    Permissions = [
      {
        Action = "deny"
        HTTP {
          PathPrefix = "/hello_b"
          Header = [
            {
              Name    = "x-debug"
              Present = true
            },
          ]
        }
      },
      {
        Action = "allow"
        HTTP {
          PathExact = "/hello_b"
          Methods   = ["GET"]
        }
      },
      {
        Action = "deny"
        HTTP {
          PathPrefix = "/"
        }
      },
    ]
  },
]
