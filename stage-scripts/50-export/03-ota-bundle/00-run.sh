# OTA: slot A of the image, shrunk and signed into deploy/<name>.raucb (verity bundle).
exec python3 -m ota.buildstep bundle
