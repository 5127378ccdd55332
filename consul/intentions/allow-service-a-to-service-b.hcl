# `loadgen up --secure` only: under ACL default-deny, service-a -> service-b needs this
# allow (a plain dev agent allows by default). The intentions stage replaces it with its deny.
Kind = "service-intentions"
Name = "service-b"
Sources = [
  {
    Name   = "service-a"
    Action = "allow"
  },
]
