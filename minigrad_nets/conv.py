"""Convolution and pooling layers (the book's chapter 7) on (batch, channels, height, width) arrays.

Each follows the layer contract of ``layers.py``. The hand-written path is
the book's: ``im2col`` lays every receptive field out as a line of a matrix,
so that the convolution is one matrix product, and ``col2im`` adds the
gradient of those lines back onto the image. Here ``im2col`` is a strided view
(``sliding_window_view``) copied once, and ``col2im`` loops over the kernel
offsets only (kh * kw iterations), never over pixels or examples. The fields
are columns, one matrix per example (the book's rows, transposed), so that
``W @ cols`` comes out as (B, F, OH*OW) with no transpose: that cut the
convolution's forward + backward from 8.2 to 2.5 ms of a 21 ms float32 step.

The autograd ``apply`` is written independently, op by op: it takes, for each
kernel offset (i, j), the strided slice of the padded input that offset
touches in every window, and contracts them with the weights at that offset:

    y[n, f, r, c] = b[f] + sum_{ch, i, j} W[f, ch, i, j] * xp[n, ch, r*s + i, c*s + j]

so the autograd-vs-backprop check compares two different computations.

Max-pooling at ties: the hand-written rule sends a window's whole gradient to
its *first* maximum in row-major order (numpy's argmax, the book's rule);
autograd's ``max`` splits it equally between the tied entries. The two agree
whenever a window's maximum is unique.
"""

import autograd.numpy as anp
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import initializers
from .layers import Layer


def _pair(value, what, name, minimum=1):
    """``(a, b)`` from an int or a pair of ints, each >= minimum; a clear error naming the layer otherwise."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name}: {what} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: {what} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _size(pair):
    return f"{pair[0]}x{pair[1]}"


def _step(pair):
    """A stride or padding for a layer's name: '2' when both axes agree, else '2x1'."""
    return str(pair[0]) if pair[0] == pair[1] else _size(pair)


def output_size(input_shape, window, stride, pad, name):
    """``(out_h, out_w)`` of windows ``window`` moved by ``stride`` over (B, C, H, W) padded by ``pad``.

    Raises a ValueError naming the layer when the input is not (B, C, H, W),
    when the window is larger than the padded input, or when the stride does not
    tile the padded input exactly (the last rows or columns would be dropped).
    """
    if len(input_shape) != 4:
        raise ValueError(f"{name} takes (batch, channels, height, width) input, got shape {tuple(input_shape)}"
                         + (": give the network input_shape=(channels, height, width), e.g. (1, 28, 28)"
                            if len(input_shape) == 2 else ""))
    height, width = input_shape[2] + 2 * pad[0], input_shape[3] + 2 * pad[1]
    padded = f"{height}x{width}" + (f" (input {input_shape[2]}x{input_shape[3]} padded by {_step(pad)})" if any(pad)
                                    else "")
    if window[0] > height or window[1] > width:
        raise ValueError(f"{name}: the {_size(window)} window is larger than the input {padded}")
    for axis, size, k, s in (("height", height, window[0], stride[0]), ("width", width, window[1], stride[1])):
        if (size - k) % s:
            raise ValueError(f"{name}: stride {s} does not tile the input {padded} along its {axis}: "
                             f"({size} - {k}) = {size - k} is not a multiple of {s}; change the stride or the padding")
    return (height - window[0]) // stride[0] + 1, (width - window[1]) // stride[1] + 1


def _check_input(x, channels, window, stride, pad, name):
    """Shape checks on the batch a layer is given (cheap: a few integer comparisons)."""
    shape = anp.shape(x)
    out = output_size(shape, window, stride, pad, name)
    if channels is not None and shape[1] != channels:
        raise ValueError(f"{name}: input has {shape[1]} channels (shape {tuple(shape)}), its weights expect {channels}")
    return out


# ---------------------------------------------------------------- im2col / col2im (hand-written path)


def im2col(x, window, stride, pad):
    """The receptive fields of x as columns, per example: (B, C, H, W) -> (B, C*kh*kw, OH*OW).

    Column p of ``cols[b]`` is the window under output pixel p, its entries in
    (C, kh, kw) order. The book's ``col`` is the same numbers, one row per
    (example, output pixel): ``cols.transpose(0, 2, 1).reshape(-1, C*kh*kw)``.
    """
    if any(pad):
        x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    fields = sliding_window_view(x, window, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]  # (B, C, OH, OW, kh, kw)
    batch, channels, out_h, out_w = fields.shape[:4]
    return fields.transpose(0, 1, 4, 5, 2, 3).reshape(batch, channels * window[0] * window[1], out_h * out_w)


def col2im(cols, input_shape, window, stride, pad):
    """The adjoint of ``im2col``: (B, C*kh*kw, OH*OW) -> (B, C, H, W), overlapping entries summed."""
    batch, channels, height, width = input_shape
    kh, kw = window
    hp, wp = height + 2 * pad[0], width + 2 * pad[1]
    out_h, out_w = (hp - kh) // stride[0] + 1, (wp - kw) // stride[1] + 1
    cols = cols.reshape(batch, channels, kh, kw, out_h, out_w)
    image = np.zeros((batch, channels, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            image[:, :, i:i + stride[0] * out_h:stride[0], j:j + stride[1] * out_w:stride[1]] += cols[:, :, i, j]
    return image[:, :, pad[0]:hp - pad[0], pad[1]:wp - pad[1]]


# ---------------------------------------------------------------- autograd building blocks


def _pad(x, pad):
    """x (B, C, H, W) with ``pad`` zero rows / columns on each side, by concatenation (autograd has no pad)."""
    for axis, p in ((2, pad[0]), (3, pad[1])):
        if p:
            zeros_shape = list(anp.shape(x))
            zeros_shape[axis] = p
            zeros = np.zeros(zeros_shape, dtype=getattr(x, "dtype", np.float64))
            x = anp.concatenate([zeros, x, zeros], axis=axis)
    return x


def _offset_slice(xp, i, j, out, stride):
    """The entries of xp (B, C, Hp, Wp) at kernel offset (i, j) of every window: (B, C, OH, OW)."""
    return xp[:, :, i:i + stride[0] * out[0]:stride[0], j:j + stride[1] * out[1]:stride[1]]


# ---------------------------------------------------------------- Conv2D


def Conv2D(filters, kernel, stride=1, pad=0, init="he"):
    """Convolution: (B, C, H, W) -> (B, filters, OH, OW); params {'W': (filters, C, kh, kw), 'b': (filters,)}.

    ``OH = (H + 2*pad - kh) / stride + 1`` (likewise OW), which must be whole.
    ``init``: 'he', 'xavier', 'glorot', a std, or an initialiser; the fan-in
    is C*kh*kw (one filter's entries), the fan-out ``filters``.
    """
    if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
        raise ValueError(f"Conv2D takes a positive whole number of filters, got {filters!r}")
    filters = int(filters)
    kernel = _pair(kernel, "kernel", "Conv2D")
    stride = _pair(stride, "stride", "Conv2D")
    pad = _pair(pad, "pad", "Conv2D", minimum=0)
    w_init = initializers.get(init)
    name = (f"Conv2D({filters}, {_size(kernel)}" + (f", stride {_step(stride)}" if stride != (1, 1) else "")
            + (f", pad {_step(pad)}" if any(pad) else "") + ")")

    def init_fun(rng, input_shape, dtype):
        out_h, out_w = output_size(input_shape, kernel, stride, pad, name)
        channels = input_shape[1]
        # The initialiser gives a (fan_in, fan_out) matrix: column f is filter f, its entries in (C, kh, kw) order.
        W = np.asarray(w_init(rng, channels * kernel[0] * kernel[1], filters), dtype=dtype)
        params = {"W": np.ascontiguousarray(W.T.reshape(filters, channels, *kernel)),
                  "b": np.zeros(filters, dtype=dtype)}
        return (input_shape[0], filters, out_h, out_w), params, None

    def apply(params, state, x, train, key):
        W, b = params["W"], params["b"]
        out = _check_input(x, anp.shape(W)[1], kernel, stride, pad, name)
        xp = _pad(x, pad)
        # The input entry under kernel offset (i, j) of every window, offsets stacked: (B, C, kh*kw, OH, OW).
        patches = anp.stack([_offset_slice(xp, i, j, out, stride) for i, j in np.ndindex(*kernel)], axis=2)
        # y[b, f, r, c] = sum over channel ch and offset k of W[f, ch, k] * patches[b, ch, k, r, c], plus b[f]
        y = anp.tensordot(patches, anp.reshape(W, (filters, -1, kernel[0] * kernel[1])), axes=([1, 2], [1, 2]))
        return anp.transpose(y, (0, 3, 1, 2)) + anp.reshape(b, (1, -1, 1, 1)), state

    def forward(params, state, x, train, key):
        W = params["W"]
        out_h, out_w = _check_input(x, W.shape[1], kernel, stride, pad, name)
        cols = im2col(x, kernel, stride, pad)                    # (B, C*kh*kw, OH*OW)
        y = W.reshape(filters, -1) @ cols                        # (F, C*kh*kw) @ each example's cols: (B, F, OH*OW)
        y += params["b"][:, None]
        return y.reshape(len(x), filters, out_h, out_w), (cols, x.shape), state

    def backward(params, cache, dy, need_dx):
        cols, x_shape = cache
        W = params["W"]
        dy = dy.reshape(len(dy), filters, -1)                    # (B, F, OH*OW)
        # dW = sum over examples of dy[b] @ cols[b].T; db = dy summed over examples and pixels.
        grads = {"W": (dy @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape), "b": dy.sum(axis=(0, 2))}
        if not need_dx:
            return grads, None
        return grads, col2im(W.reshape(filters, -1).T @ dy, x_shape, kernel, stride, pad)

    return Layer(name, init_fun, apply, forward, backward, has_params=True, decayed=(("W",),))


# ---------------------------------------------------------------- pooling


def _pool_layer(kind, pool, stride):
    """The window, stride and name of a pooling layer, checked."""
    window = _pair(pool, "pool", kind)
    stride = window if stride is None else _pair(stride, "stride", kind)
    name = f"{kind}({_size(window)}" + (f", stride {_step(stride)}" if stride != window else "") + ")"
    return window, stride, name


def _pool_init(window, stride, name):
    def init_fun(rng, input_shape, dtype):
        out_h, out_w = output_size(input_shape, window, stride, (0, 0), name)
        return tuple(input_shape[:2]) + (out_h, out_w), None, None

    return init_fun


def _windows(x, window, stride):
    """The pooling windows of x, window offset first: (B, C, H, W) -> (kh*kw, B, C, OH, OW), a copy.

    Offset-first, so that reductions over a window run across whole arrays: numpy
    reduces a short last axis row by row (max over (..., 4) is ~20x slower).
    """
    fields = sliding_window_view(x, window, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]  # (B, C, OH, OW, kh, kw)
    return fields.transpose(4, 5, 0, 1, 2, 3).reshape((-1,) + fields.shape[:4])


def _scatter_windows(per_offset, x_shape, window, stride):
    """The adjoint of ``_windows``: (kh*kw, B, C, OH, OW) -> (B, C, H, W), overlapping entries summed."""
    out_h, out_w = per_offset.shape[3:]
    dx = np.zeros(x_shape, dtype=per_offset.dtype)
    for k, (i, j) in enumerate(np.ndindex(*window)):
        dx[:, :, i:i + stride[0] * out_h:stride[0], j:j + stride[1] * out_w:stride[1]] += per_offset[k]
    return dx


def MaxPool2D(pool=2, stride=None):
    """Max pooling over each channel: (B, C, H, W) -> (B, C, OH, OW); ``stride`` defaults to ``pool``.

    Backward sends each window's gradient to its first maximum (row-major), as the book's argmax does.
    """
    window, stride, name = _pool_layer("MaxPool2D", pool, stride)

    def apply(params, state, x, train, key):
        out = _check_input(x, None, window, stride, (0, 0), name)
        if stride == window:
            # Windows that tile x are blocks of a reshape; autograd's VJP of a slice (np.add.at) is slow: this
            # takes an autograd step of SimpleConvNet from 118 to 58 ms in float32, 183 to 151 ms in float64.
            blocks = anp.reshape(x, anp.shape(x)[:2] + (out[0], window[0], out[1], window[1]))
            return anp.max(blocks, axis=(3, 5)), state
        slices = [_offset_slice(x, i, j, out, stride) for i, j in np.ndindex(*window)]
        return anp.max(anp.stack(slices), axis=0), state  # offsets first: see _windows

    def forward(params, state, x, train, key):
        _check_input(x, None, window, stride, (0, 0), name)
        fields = _windows(x, window, stride)
        y = fields.max(axis=0)
        # first_max[k]: offset k holds its window's first maximum (numpy's argmax is ~5x slower here).
        first_max, taken = fields == y, np.zeros(y.shape, dtype=bool)
        for k in range(len(fields)):
            first_max[k] &= ~taken
            taken |= first_max[k]
        return y, (first_max, x.shape), state

    def backward(params, cache, dy, need_dx):
        first_max, x_shape = cache
        return None, _scatter_windows(first_max * dy, x_shape, window, stride)

    return Layer(name, _pool_init(window, stride, name), apply, forward, backward)


def AvgPool2D(pool=2, stride=None):
    """Average pooling over each channel: (B, C, H, W) -> (B, C, OH, OW); ``stride`` defaults to ``pool``."""
    window, stride, name = _pool_layer("AvgPool2D", pool, stride)
    area = window[0] * window[1]

    def apply(params, state, x, train, key):
        out = _check_input(x, None, window, stride, (0, 0), name)
        total = 0.0
        for i, j in np.ndindex(*window):
            total = total + _offset_slice(x, i, j, out, stride)
        return total / area, state

    def forward(params, state, x, train, key):
        _check_input(x, None, window, stride, (0, 0), name)
        return _windows(x, window, stride).mean(axis=0), x.shape, state

    def backward(params, x_shape, dy, need_dx):
        share = dy / np.asarray(area, dtype=dy.dtype)            # every entry of a window gets dy / (kh*kw)
        return None, _scatter_windows(np.broadcast_to(share, (area,) + share.shape), x_shape, window, stride)

    return Layer(name, _pool_init(window, stride, name), apply, forward, backward)
