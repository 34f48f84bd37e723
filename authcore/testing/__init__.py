"""Testing kit for plugin authors."""
