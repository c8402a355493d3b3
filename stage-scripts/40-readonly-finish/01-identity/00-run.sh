# Record what was built (/etc/cydynni-image-id, package list) and set the RAUC identity.
exec python3 -m image.identity
