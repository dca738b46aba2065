"""Device management: the registry, provisioning, liveness and commands down to devices."""
