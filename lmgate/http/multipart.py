"""multipart/form-data bodies (audio uploads), parsed from bytes already read under the size limit."""

from __future__ import annotations

from lmgate.errors import BadRequest


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str | None]]]:
    """-> (text fields, files as name -> (filename, bytes, content type))."""
    boundary = None
    for piece in content_type.split(";")[1:]:
        k, _, v = piece.strip().partition("=")
        if k.lower() == "boundary":
            boundary = v.strip('"')
    if not boundary:
        raise BadRequest("the multipart body has no boundary", code="invalid_multipart")
    delim = b"--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str | None]] = {}
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            raise BadRequest("a multipart part has no header end", code="invalid_multipart")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        name = filename = ctype = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            hk, _, hv = line.partition(":")
            if hk.strip().lower() == "content-disposition":
                for item in hv.split(";")[1:]:
                    ik, _, iv = item.strip().partition("=")
                    if ik == "name":
                        name = iv.strip('"')
                    elif ik == "filename":
                        filename = iv.strip('"')
            elif hk.strip().lower() == "content-type":
                ctype = hv.strip()
        if name is None:
            continue
        if filename is not None:
            files[name] = (filename, data, ctype)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files
