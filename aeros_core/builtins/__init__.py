"""The core's own behaviour, registered through the ``aeros`` entry-point group like any plugin."""
