"""What the consul and nomad settings' tests assert about the client's TLS context."""

import ssl


def plain_http_context(ctx: object) -> bool:
    """Plain http never uses TLS: the client gets a context that loads no CA (starting fast)
    yet still verifies, so it could only refuse, never trust, if it were used."""
    return (isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
            and ctx.cert_store_stats()["x509_ca"] == 0)
