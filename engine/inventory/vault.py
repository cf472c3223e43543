"""ansible-vault's AES256 format (1.1 and 1.2), decrypted with ``--vault-password-file``.

```yaml
mysql_password: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  3432653735...
```
The format, as Ansible documents it: the body is hex of ``hex(salt) \\n hex(hmac) \\n
hex(ciphertext)``; PBKDF2-HMAC-SHA256 (10,000 rounds) of the password and salt gives 80 bytes:
the AES-256 key, the HMAC-SHA256 key and the CTR nonce; the plaintext is PKCS#7 padded.
The cipher comes from ``cryptography`` (already installed as paramiko's dependency).
"""

from __future__ import annotations

import os

from engine.errors import InputError, Source

HEADER = "$ANSIBLE_VAULT;"


def is_vaulted(text: str) -> bool:
    return text.lstrip().startswith(HEADER)


def read_password(path: str) -> bytes:
    """The password in a vault password file; an executable file is run and its output used,
    as Ansible does (a password manager's client, say)."""
    import subprocess  # here, as the crypto below: a run without a vault does not import them

    p = os.path.expanduser(path)
    try:
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            out = subprocess.run([p], capture_output=True, timeout=60, check=True).stdout
        else:
            with open(p, "rb") as fh:
                out = fh.read()
    except (OSError, subprocess.SubprocessError) as exc:
        raise InputError(f"cannot read the vault password from {path}: {exc}", source=Source("--vault-password-file"),
                         hint="a file holding the password, or an executable that prints it") from None
    password = out.strip()
    if not password:
        raise InputError(f"the vault password file {path} is empty", source=Source("--vault-password-file"))
    return password


def decrypt(vaulttext: str, password: bytes, name: str, source: Source | None = None) -> str:
    """The plaintext of one vaulted value or file; a wrong password is a located error."""
    import binascii
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    lines = vaulttext.strip().splitlines()
    header = lines[0].strip().split(";") if lines else []
    if len(header) < 3 or header[0] != "$ANSIBLE_VAULT" or header[2].strip() != "AES256":
        raise InputError(f"{name}: not an ansible-vault AES256 text", source=source)
    try:
        body = binascii.unhexlify("".join(ln.strip() for ln in lines[1:]))
        salt_hex, mac_hex, data_hex = body.split(b"\n", 2)
        salt, mac, data = binascii.unhexlify(salt_hex), binascii.unhexlify(mac_hex), binascii.unhexlify(data_hex)
    except (binascii.Error, ValueError):
        raise InputError(f"{name}: the ansible-vault text is damaged", source=source) from None
    derived = hashlib.pbkdf2_hmac("sha256", password, salt, 10000, dklen=80)
    key, mac_key, nonce = derived[:32], derived[32:64], derived[64:80]
    if not hmac.compare_digest(hmac.new(mac_key, data, hashlib.sha256).digest(), mac):
        raise InputError(f"{name}: the vault password does not decrypt it", source=source,
                         hint="check --vault-password-file (runbook uses one password for every vaulted value)")
    decryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    pad = padded[-1] if padded else 0
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        raise InputError(f"{name}: the decrypted value is malformed", source=source)
    try:
        return padded[:-pad].decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: the decrypted value is not UTF-8 text", source=source) from None


def unvault(text: str, path: str, password: bytes | None) -> str:
    """A file's text, decrypted when the whole file is vaulted (``ansible-vault encrypt``)."""
    if not is_vaulted(text):
        return text
    if password is None:
        raise InputError(f"{path} is encrypted with ansible-vault and no vault password was given", source=Source(path, 1, 1),
                         hint="pass --vault-password-file FILE (or set ANSIBLE_VAULT_PASSWORD_FILE)")
    return decrypt(text, password, path, Source(path, 1, 1))
