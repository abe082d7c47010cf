"""The U-Net of Scherr et al. (2018), Figure 3 and section 3.2, in backend-neutral Keras 3.

Encoder levels of two 3 x 3 convolutions, each followed by batch normalisation and ReLU, with
2 x 2 max pooling between them; the number of filters starts at ``F`` and doubles per level.
The decoder upsamples with learnable 2 x 2 transposed convolutions of stride 2, concatenates
the encoder features of the same level (zero 'same' padding, so nothing is cropped) and again
applies two convolution / batch-norm / ReLU steps. A 1 x 1 convolution maps to the output
channels: one with a sigmoid (binary target) or three with a softmax (boundary, border and
marker targets, see :data:`nucleitut.targets.TARGET_CHANNELS`).

The network is fully convolutional: it takes images of any height and width divisible by
:func:`required_multiple` ``(blocks)``.

From the paper: batch normalisation, learnable transposed convolutions (Figure 3), strides 1,
2 and 2 and zero padding (section 3.2), F=64 for 4 blocks and F=32 for 5 blocks (Table 3).
This project's choices (the paper gives none): the batch-norm momentum 0.9, He-normal
initialisation and convolutions without bias. The paper names spatial dropout as a possible
regulariser (section 4.4) but does not use it; neither does this U-Net.
"""

from __future__ import annotations

import numbers

import keras
from keras import layers

__all__ = ["ALLOWED_BLOCKS", "build_unet", "required_multiple"]

#: Pooling depths this library builds: the paper trains 4- and 5-block U-Nets (Table 3) and
#: draws a 3-block U-Net in Figure 3; the quick profile uses 3 and 4 blocks.
ALLOWED_BLOCKS = (3, 4, 5)


def _check_blocks(blocks) -> int:
    if isinstance(blocks, bool) or not isinstance(blocks, numbers.Integral):
        raise TypeError(f"blocks must be an integer, got {blocks!r}")
    if blocks not in ALLOWED_BLOCKS:
        raise ValueError(f"blocks must be one of {ALLOWED_BLOCKS}, got {blocks}")
    return int(blocks)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def required_multiple(blocks: int) -> int:
    """Height and width of the network input must be multiples of this number.

    Parameters
    ----------
    blocks : int
        Number of pooling levels (3, 4 or 5).

    Returns
    -------
    int
        ``2 ** blocks``: every pooling halves the size and the decoder must restore it exactly.
    """
    return 2 ** _check_blocks(blocks)


def _conv_bn_relu(x, filters: int, name: str):
    """Two 3 x 3 convolution -> batch norm -> ReLU steps."""
    for step in (1, 2):
        # No bias: the batch normalisation that follows has its own offset (beta).
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
            name=f"{name}_conv{step}",
        )(x)
        # Momentum 0.9 (Keras' default is 0.99; the paper gives none, so this project's choice):
        # the running statistics used for prediction then follow the weights within a few
        # dozen steps, which short CPU trainings need.
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{step}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{step}")(x)
    return x


def build_unet(
    blocks: int = 4,
    filters: int = 64,
    out_channels: int = 1,
    input_channels: int = 3,
    activation: str | None = None,
    name: str = "unet",
) -> keras.Model:
    """Build the U-Net of Scherr et al. (2018), Figure 3 (see the module docstring for what is ours).

    Parameters
    ----------
    blocks : {3, 4, 5}, default 4
        Number of max-pooling levels; the bottleneck has ``filters * 2**blocks`` filters.
    filters : int, default 64
        Filters ``F`` of the first level, doubled at every level below.
    out_channels : int, default 1
        1 for the binary target, 3 for the boundary/border/marker targets.
    input_channels : int, default 3
        Channels of the input image.
    activation : {'sigmoid', 'softmax'} or None, default None
        Output activation; None picks sigmoid for one output channel and softmax otherwise.
    name : str, default 'unet'
        Model name.

    Returns
    -------
    keras.Model
        Input ``(batch, H, W, input_channels)`` with H and W multiples of
        ``required_multiple(blocks)``; output ``(batch, H, W, out_channels)`` probabilities in
        float32 (the output activation is a float32 layer, so mixed precision keeps a
        float32 output for the losses).

    Notes
    -----
    Parameter counts (``model.count_params()``, input 3 / output 1 channel): 4 blocks F=64
    31.0 M, 5 blocks F=32 31.1 M, 4 blocks F=32 7.8 M, 4 blocks F=16 1.95 M, 3 blocks F=16
    0.48 M.
    """
    blocks = _check_blocks(blocks)
    filters = _check_positive_int(filters, "filters")
    out_channels = _check_positive_int(out_channels, "out_channels")
    input_channels = _check_positive_int(input_channels, "input_channels")
    if activation is None:
        activation = "sigmoid" if out_channels == 1 else "softmax"
    if activation not in ("sigmoid", "softmax"):
        raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")
    if activation == "softmax" and out_channels == 1:
        # A softmax over one channel is the constant 1.
        raise ValueError("a softmax output needs out_channels >= 2")

    inputs = keras.Input(shape=(None, None, input_channels), name="image")
    x = inputs
    skips = []
    for level in range(blocks):
        x = _conv_bn_relu(x, filters * 2**level, name=f"enc{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"enc{level + 1}_pool")(x)

    x = _conv_bn_relu(x, filters * 2**blocks, name="bottleneck")

    for level in reversed(range(blocks)):
        level_filters = filters * 2**level
        x = layers.Conv2DTranspose(
            level_filters, 2, strides=2, kernel_initializer="he_normal",
            name=f"dec{level + 1}_upconv",
        )(x)
        x = layers.Concatenate(axis=-1, name=f"dec{level + 1}_concat")([skips[level], x])
        x = _conv_bn_relu(x, level_filters, name=f"dec{level + 1}")

    x = layers.Conv2D(out_channels, 1, name="logits")(x)
    outputs = layers.Activation(activation, dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def network_depth(model) -> int:
    """Number of pooling steps (U-Net blocks) of a model: its inputs must be divisible by
    ``2 ** network_depth(model)`` (:func:`required_multiple`).

    >>> network_depth(build_unet(blocks=3, filters=2))
    3
    """
    import keras

    return sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
