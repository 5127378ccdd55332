# nested-splitter (loadgen's own stage): service-b-canary is a virtual service (no instance)
# whose own splitter divides its share of service-b's traffic. It speaks HTTP like service-b.
Kind     = "service-defaults"
Name     = "service-b-canary"
Protocol = "http"
