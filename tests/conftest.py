"""Our tests' fixtures, hooks and options are the plugin cyrus_testbed.plugin."""

pytest_plugins = ("cyrus_testbed.plugin",)
