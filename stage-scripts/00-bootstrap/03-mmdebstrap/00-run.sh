#!/bin/sh
# Bootstrap the rootfs (all stages' NN-packages) or restore it from the bootstrap cache.
exec python3 -m image.bootstrap
