# OTA: the bundle keyring (CA certificates only) and the build counter floor into the
# rootfs; development keys are generated on the build host if no release keys are set.
exec python3 -m ota.buildstep keyring
