# The canary: 85 % of service-b's traffic to v1, 15 % to v2.
Kind = "service-splitter"
Name = "service-b"
Splits = [
  {
    Weight        = 85
    ServiceSubset = "v1"
  },
  {
    Weight        = 15
    ServiceSubset = "v2"
  },
]
