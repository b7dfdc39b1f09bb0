"""The lab: a local mini-foundation on loopback. The engine never imports this package."""
