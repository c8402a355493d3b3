"""CydYnni Hub over-the-air updates: host tooling (keys, bundles, fleet server) and the
device agent (ota.agent). Standard library only, so the same package runs on the hub
(Debian's python3) and on a build or support host; it never imports hub/."""
