"""The batch kernels of the streaming / Spark evaluations against pure-numpy references."""

import numpy as np
import pytest

from offline_eval._stream_kernels import BLOCK_ROWS, column_moments


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, BLOCK_ROWS), (4, 3 * BLOCK_ROWS + 17)])
def test_column_moments_equal_the_numpy_centred_product(shape):
    rng = np.random.default_rng(sum(shape))
    columns = rng.normal(loc=3.0, scale=2.0, size=shape) * rng.lognormal(size=(shape[0], 1))
    mean, comoment = column_moments(columns)
    centred = columns - columns.mean(axis=1)[:, None]
    np.testing.assert_allclose(mean, columns.mean(axis=1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(comoment, centred @ centred.T, rtol=1e-11, atol=1e-11 * shape[1])
    np.testing.assert_array_equal(comoment, comoment.T)


def test_column_moments_keep_precision_under_a_large_offset():
    # co-moments about the mean, not raw sums of squares: an offset of 1e8 must not cancel the variance away
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5000))
    _, comoment = column_moments(x + 1e8)
    centred = x - x.mean(axis=1)[:, None]
    np.testing.assert_allclose(comoment, centred @ centred.T, rtol=1e-6)


def test_column_moments_reject_no_rows():
    with pytest.raises(ValueError, match="n >= 1"):
        column_moments(np.zeros((3, 0)))
