# Copy overlays/rootfs verbatim into the rootfs (owner root, modes and symlinks kept).
cp -R --no-dereference --preserve=mode,timestamps,links "$REPO_DIR/overlays/rootfs/." "$ROOTFS_DIR/"
