"""Built-in CLI commands, one module per area; each has ``register(cli)``."""
