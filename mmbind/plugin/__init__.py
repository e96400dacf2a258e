"""The plugin contract: hooks (hookspecs), what plugins register (specs), the registries and the
manager that loads every entry point of group "mmbind"."""
