"""The shared watch cache: value objects, the Store, and the sources that feed it."""
