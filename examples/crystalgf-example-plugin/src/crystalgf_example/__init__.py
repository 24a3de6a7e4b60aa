"""An example third-party CrystalGF plugin."""
