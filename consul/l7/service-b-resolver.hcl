# Subsets of service-b by the version in each instance's service metadata.
Kind          = "service-resolver"
Name          = "service-b"
DefaultSubset = "v1"
Subsets = {
  v1 = {
    Filter = "Service.Meta.version == v1"
  }
  v2 = {
    Filter = "Service.Meta.version == v2"
  }
}
