import sys

# pymysql and redis import `cryptography` at load time if it is installed, for features the
# hub never uses (pymysql: RSA password exchange of MySQL's sha256/caching_sha2 plugins,
# which MariaDB does not have; redis: OCSP stapling over TLS, and Redis is on loopback).
# Its Rust core costs ~6 MB RSS in every hub process, so it is hidden while the hub loads
# them and visible again afterwards (a later `import cryptography` works as usual).
_hidden = "cryptography" not in sys.modules
if _hidden:
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # makes the import fail
try:
    from hub.cli import main
finally:
    if _hidden and sys.modules.get("cryptography", 0) is None:
        del sys.modules["cryptography"]

sys.exit(main())
