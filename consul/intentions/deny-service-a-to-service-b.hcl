# The seed's `consul intention create -deny service-a service-b`, as a config entry.
Kind = "service-intentions"
Name = "service-b"
Sources = [
  {
    Name   = "service-a"
    Action = "deny"
  },
]
