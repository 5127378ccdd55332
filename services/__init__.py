"""The reference mesh's demo services (aiohttp): service-a calls service-b through its sidecar."""
