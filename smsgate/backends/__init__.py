"""Provider backends: one module per provider, each on the private HTTP base in ``_http``."""
