# nested-splitter: what reaches service-b-canary is split again, half to each subset.
Kind = "service-splitter"
Name = "service-b-canary"
Splits = [
  {
    Weight        = 50
    Service       = "service-b"
    ServiceSubset = "v1"
  },
  {
    Weight        = 50
    Service       = "service-b"
    ServiceSubset = "v2"
  },
]
