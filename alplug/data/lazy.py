"""Pools larger than memory: images addressed by index and read batch by batch.

In a run, modAL and the strategies only ever hold index arrays into the data
set's images; the skorch net turns an index array into this torch Dataset,
which reads the rows of each batch when the DataLoader asks for them. With a
memory-mapped array behind it, a pool of a million images is never loaded whole.
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np


def is_index_array(X) -> bool:
    """True for a 1-d integer array: sample ids rather than images."""
    return isinstance(X, np.ndarray) and X.ndim == 1 and np.issubdtype(X.dtype, np.integer)


def as_model_input(block: np.ndarray) -> np.ndarray:
    """uint8 stays uint8 (the model scales it), everything else becomes float32."""
    block = np.asarray(block)
    return block if block.dtype == np.uint8 else block.astype(np.float32)


class IndexedImages:
    """A torch map-style Dataset of ``images[ids[i]]`` (and ``y[i]``), read lazily.

    ``__getitems__`` (used by torch's DataLoader for whole batches) reads a
    batch's rows in one sorted fancy-indexing call, which is what a memory map
    reads fastest.
    """

    def __init__(self, images, ids: np.ndarray, y=None):
        self.images, self.ids = images, np.asarray(ids, dtype=np.int64)
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and len(self.y) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.ids)

    def _target(self, i):
        return self.y[i] if self.y is not None else np.float32(0)  # skorch's placeholder when y is unknown

    def __getitem__(self, i):
        return as_model_input(self.images[self.ids[i]]), self._target(i)

    def __getitems__(self, positions):
        positions = np.asarray(positions, dtype=np.int64)
        ids = self.ids[positions]
        order = np.argsort(ids, kind="stable")
        block = np.empty((len(ids),) + tuple(self.images.shape[1:]), dtype=self.images.dtype)
        block[order] = self.images[ids[order]]  # one sorted read per batch
        block = as_model_input(block)
        return [(block[k], self._target(p)) for k, p in enumerate(positions)]


def npz_member_header(path: str | Path, key: str) -> tuple[tuple, np.dtype, bool]:
    """(shape, dtype, compressed) of array ``key`` of an ``.npz`` file, from its ``.npy`` header alone: what loading
    it would allocate, known before anything is allocated (a few compressed bytes can promise gigabytes)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
    return shape, dtype, info.compress_type != zipfile.ZIP_STORED


def npz_member_memmap(path: str | Path, key: str) -> np.memmap | None:
    """Memory-map array ``key`` of an uncompressed ``.npz`` file; None if it is compressed.

    numpy memory-maps ``.npy`` files but loads ``.npz`` members whole. An
    uncompressed ``.npz`` (``np.savez``) stores each member as a plain ``.npy``
    inside the zip, so we find its byte offset and map it.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local_header = f.read(30)
        name_length, extra_length = struct.unpack("<HH", local_header[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran_order else "C")
