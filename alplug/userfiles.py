"""Files from and for the user: one reader of what they hand us, one writer of what we hand back.

A name can point at anything: a FIFO (opening it for reading blocks until a writer comes, forever), a device such
as /dev/zero (endless), a directory, a file that grows while it is read. So the file is opened once without
blocking, checked on the open descriptor (a regular file, not over the size limit) and read from that same
descriptor, at most one byte past the limit. Nothing in the standard library or our dependencies does this in
one call; ``Path.read_text`` blocks on a FIFO and reads /dev/zero until memory runs out.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import UserFileError  # noqa: F401 - re-exported: raised here, defined with the others




def _size_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"


def open_regular(path: str | Path, what: str, *, follow_links: bool = True) -> int:
    """An open, read-only descriptor of ``path`` once it is checked to be a regular file (never blocks on a
    FIFO); a one-line ``UserFileError`` naming ``what`` (for example "config file x.toml") otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UserFileError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise UserFileError(f"{what} is a directory, not a file") from None
    except OSError as exc:
        raise UserFileError(f"cannot read {what}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                    if stat.S_ISSOCK(mode) else "not a regular file")
            raise UserFileError(f"{what} is {kind}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_user_file(path: str | Path, limit: int, what: str, *, too_large: str = "") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read from one descriptor (see the module's
    docstring). ``too_large``: what to do about a larger one, appended to that error."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        try:
            if os.fstat(f.fileno()).st_size > limit:
                raise UserFileError(f"{what} is larger than {_size_text(limit)}" + (f"; {too_large}" if too_large
                                                                                    else ""))
            data = f.read(limit + 1)
        except OSError as exc:
            raise UserFileError(f"cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew while it was read
        raise UserFileError(f"{what} is larger than {_size_text(limit)}" + (f"; {too_large}" if too_large else ""))
    return data


def read_user_text(path: str | Path, limit: int, what: str, *, too_large: str = "", hint: str = "") -> str:
    """``read_user_file`` decoded as UTF-8 (a BOM is dropped); ``hint``: what to do about another encoding."""
    data = read_user_file(path, limit, what, too_large=too_large)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserFileError(f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})"
                            + (f"; {hint}" if hint else "")) from None


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe to print on a terminal: control characters (escape sequences, carriage returns) shown as
    Python escapes, at most ``limit`` characters."""
    shown = text if text.isprintable() else repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[:limit] + "..."


# ---- writing: whole or not at all ---------------------------------------------------------------------------------
# Ours: neither the standard library nor our dependencies write a file atomically (a temporary file beside it,
# flushed, renamed over it, the directory synced) and never leave a half or empty file behind.

def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries (a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


# mkstemp makes files 0600; files alplug writes get the mode any other new file would (0666 less the umask).
FILE_MODE = 0o666 & ~_read_umask()


def torch_bytes(obj) -> bytes:
    """``torch.save(obj)`` into memory: written then through Python's own I/O (``atomic_write`` or ``open``), a full
    disk is an ``OSError`` naming the file, where torch's zip writer raises ``RuntimeError: [enforce fail ...]``."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_write(path: Path, data: bytes | str, *, exclusive: bool = False) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, flushed, then moved into place.

    ``exclusive``: never replace an existing ``path`` (``FileExistsError``), for files the user names
    (exports), which a full disk or an interrupt must not leave as a 0-byte file that blocks the next try.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        if exclusive:
            os.link(tmp, path)  # atomic, and refuses an existing path
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # the rename itself survives a power cut
