# nested-splitter: half of service-b's traffic to v1, half to service-b-canary, whose own
# splitter halves it again -- so the effective split is v1 75 % / v2 25 %, not the 50/50
# this entry shows. Consul compiles (flattens) the two into one chain.
Kind = "service-splitter"
Name = "service-b"
Splits = [
  {
    Weight        = 50
    ServiceSubset = "v1"
  },
  {
    Weight  = 50
    Service = "service-b-canary"
  },
]
