"""mmbind's first-party plugins. Each subpackage is one plugin, loaded through the "mmbind"
entry-point group exactly as a third-party plugin is (see pyproject.toml)."""
