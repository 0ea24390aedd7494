# TLS for the OCPP connection, as the seed's certificate section describes it:
#   no CA stored          -> encrypted, the server not verified (the views say "not verified")
#   CA list stored        -> the server must present a certificate one of them signed (security profile 2)
#   client cert and key   -> presented to the server as well (security profile 3)
# The settings hold PEM text; this build's TLS layer parses DER only, so each PEM block is decoded here.
import binascii

NONE = "none"
NOT_VERIFIED = "not verified"
VERIFIED = "verified"
VERIFIED_CLIENT = "verified, client certificate"


def pem_blocks(text):
    """The DER bytes of every PEM block in text (certificates or a key), in order; ValueError if none or if
    one is damaged. The error text never holds any of the data."""
    if isinstance(text, str):
        text = text.encode()
    out = []
    i = 0
    while True:
        start = text.find(b"-----BEGIN ", i)
        if start < 0:
            break
        head_end = text.find(b"-----", start + 11)
        end = text.find(b"-----END ", head_end + 5) if head_end > 0 else -1
        if end < 0:
            raise ValueError("a PEM block has no END line")
        if b"ENCRYPTED" in text[start:head_end]:
            raise ValueError("encrypted keys are not supported: store the key without a passphrase")
        body = text[head_end + 5:end]
        if b":" in body:  # traditional encrypted PEM headers (Proc-Type: 4,ENCRYPTED)
            raise ValueError("encrypted keys are not supported: store the key without a passphrase")
        try:
            out.append(binascii.a2b_base64(b"".join(body.split())))
        except ValueError:
            raise ValueError("a PEM block is not valid base64")
        i = text.find(b"-----", end + 9)
        i = len(text) if i < 0 else i + 5
    if not out:
        raise ValueError("no PEM block (-----BEGIN ...-----) found")
    return out


def mode(ca, cert, key):
    if ca:
        return VERIFIED_CLIENT if cert and key else VERIFIED
    return NOT_VERIFIED


def wrap(sock, host, ca, cert, key):
    """The TCP socket wrapped for TLS (handshake deferred to the first stream read/write)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        for der in pem_blocks(ca):  # each call adds one certificate to the trusted list
            ctx.load_verify_locations(cadata=der)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert and key:
        ctx.load_cert_chain(pem_blocks(cert)[0], pem_blocks(key)[0])
    s = ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    s.setblocking(False)
    return s
