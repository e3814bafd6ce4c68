"""What the running system tells its operators: metrics, log context. Imports no app of ours,
so every layer (services, providers, the GDPR tools) can report through it."""
