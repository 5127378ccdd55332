# service-b speaks HTTP (required by the resolver subsets and the splitter).
Kind     = "service-defaults"
Name     = "service-b"
Protocol = "http"
