import numpy as np


class CountingImages:
    """An (N, C, H, W) image array that records how many rows each read asks for."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads: list[int] = []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        rows = self.array[index]
        self.reads.append(1 if np.ndim(index) == 0 else len(np.atleast_1d(index)))
        return rows

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole image array was materialised")
