"""keras_vggface architectures (VGG16, ResNet50, SENet50) built in Keras, loading a user's weights.

No VGGFace weights are on the package registries: `--weights` takes the keras_vggface .h5
file (with or without the top). Layers carry the published names ('/' is spelled '_',
which Keras 3 requires); weights are matched by name and shape, so a file for another
architecture fails with one line naming what does not fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convert.backbone import Backbone
from edge.errors import UserError
from edge.hashing import file_hash

INPUT_SIZE = 224
# keras_vggface utils.preprocess_input: RGB -> BGR, minus the training set's mean (B, G, R)
MEAN_BGR = {
    "vgg16": (93.5940, 104.7624, 129.1863),
    "resnet50": (91.4953, 103.8827, 131.0912),
    "senet50": (91.4953, 103.8827, 131.0912),
}
_STAGES = [(2, [64, 64, 256], 3, (1, 1)), (3, [128, 128, 512], 4, (2, 2)),
           (4, [256, 256, 1024], 6, (2, 2)), (5, [512, 512, 2048], 3, (2, 2))]  # fmt: skip


def _key(name: str) -> str:
    return name.replace("/", "_")


def build_vgg16(top: bool):
    """VGGFace VGG16 up to fc7 (4096, ReLU) with the top, else pool5 averaged (512)."""
    from keras import Input, Model, layers

    inp = Input((INPUT_SIZE, INPUT_SIZE, 3))
    x = inp
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], 1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(
                filters, 3, activation="relu", padding="same", name=f"conv{block}_{i}"
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
    if top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc6")(x)
        x = layers.Dense(4096, activation="relu", name="fc7")(x)
    else:
        x = layers.GlobalAveragePooling2D()(x)
    return Model(inp, x, name="vggface_vgg16")


def _bn(x, name: str, eps: float):
    from keras import layers

    return layers.BatchNormalization(axis=3, epsilon=eps, name=_key(name + "/bn"))(x)


def _se(x, stage: int, block: int):
    from keras import layers

    ch = int(x.shape[-1])
    se = layers.GlobalAveragePooling2D()(x)
    se = layers.Reshape((1, 1, ch))(se)
    se = layers.Conv2D(ch // 16, 1, use_bias=True, name=f"conv{stage}_{block}_1x1_down")(se)
    se = layers.Activation("relu")(se)
    se = layers.Conv2D(ch, 1, use_bias=True, name=f"conv{stage}_{block}_1x1_up")(se)
    se = layers.Activation("sigmoid")(se)
    return layers.multiply([x, se])


def _block(x, filters, stage: int, block: int, strides, project: bool, senet: bool):
    from keras import layers

    eps = 1e-4 if senet else 1e-3
    f1, f2, f3 = filters
    p = f"conv{stage}_{block}"
    shortcut = x
    y = layers.Conv2D(f1, 1, strides=strides, use_bias=False, name=f"{p}_1x1_reduce")(x)
    y = layers.Activation("relu")(_bn(y, f"{p}_1x1_reduce", eps))
    y = layers.Conv2D(f2, 3, padding="same", use_bias=False, name=f"{p}_3x3")(y)
    y = layers.Activation("relu")(_bn(y, f"{p}_3x3", eps))
    y = layers.Conv2D(f3, 1, use_bias=False, name=f"{p}_1x1_increase")(y)
    y = _bn(y, f"{p}_1x1_increase", eps)
    if senet:
        y = _se(y, stage, block)
    if project:
        shortcut = layers.Conv2D(f3, 1, strides=strides, use_bias=False, name=f"{p}_1x1_proj")(x)
        shortcut = _bn(shortcut, f"{p}_1x1_proj", eps)
    return layers.Activation("relu")(layers.add([y, shortcut]))


def build_resnet(senet: bool):
    """VGGFace2 ResNet50 / SENet50 up to avg_pool, flattened (2048)."""
    from keras import Input, Model, layers

    inp = Input((INPUT_SIZE, INPUT_SIZE, 3))
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False, name="conv1_7x7_s2")(inp)
    x = layers.Activation("relu")(_bn(x, "conv1/7x7_s2", 1e-4 if senet else 1e-3))
    x = layers.MaxPooling2D(3, strides=2)(x)
    for stage, filters, blocks, strides in _STAGES:
        for block in range(1, blocks + 1):
            first = block == 1
            x = _block(x, filters, stage, block, strides if first else (1, 1), first, senet)
    x = layers.AveragePooling2D(7, name="avg_pool")(x)
    x = layers.Flatten()(x)
    return Model(inp, x, name="vggface_senet50" if senet else "vggface_resnet50")


def build(name: str, top: bool = False):
    """The Keras model for `name` with freshly initialized (random) weights."""
    if name == "vgg16":
        return build_vgg16(top)
    return build_resnet(senet=name == "senet50")


def read_h5(path: Path) -> dict[str, list[np.ndarray]]:
    """{layer name ('/' as '_'): [arrays in Keras order]} from a Keras 2 weights or model .h5."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            g = f.get("model_weights", f)
            if "layer_names" not in g.attrs:
                raise UserError(f"{path}: not a Keras weights file (no layer_names)")
            out = {}
            for raw in g.attrs["layer_names"]:
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                lg = g[name]
                wnames = [
                    w.decode() if isinstance(w, bytes) else str(w)
                    for w in lg.attrs.get("weight_names", [])
                ]
                if wnames:
                    out[_key(name)] = [np.asarray(lg[w]) for w in wnames]
            return out
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 weights file ({exc})") from None


def write_h5(model, path: Path) -> None:
    """Save `model`'s weights in the Keras 2 .h5 layout read_h5 understands (used by tests)."""
    import h5py

    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for layer in model.layers:
            if not layer.weights:
                continue
            g = f.create_group(layer.name)
            wn = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            g.attrs["weight_names"] = [w.encode() for w in wn]
            for w, arr in zip(wn, layer.get_weights(), strict=True):
                g.create_dataset(w, data=arr)


def assign(model, weights: dict[str, list[np.ndarray]], path: Path, name: str) -> None:
    """Set every weighted layer of `model` from `weights`; one-line UserError on any mismatch."""
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = weights.get(layer.name)
        if arrays is None:
            sample = ", ".join(list(weights)[:3])
            raise UserError(
                f"{path}: not {name} weights: layer {layer.name} missing (file has {sample}, ...)"
            )
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            raise UserError(
                f"{path}: not {name} weights: layer {layer.name} has shapes {got}, expected {want}"
            )
        layer.set_weights(arrays)


def load_vggface(name: str, weights: str | None) -> Backbone:
    """The keras_vggface `name` network with the user's weights file."""
    import tensorflow as tf

    if not weights:
        raise UserError(
            f"--backbone {name} needs --weights FILE (the keras_vggface .h5; none are on the package registries)"
        )
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    arrays = read_h5(path)
    top = name == "vgg16" and "fc7" in arrays
    model = build(name, top)
    assign(model, arrays, path, name)
    mean = tf.constant(MEAN_BGR[name], tf.float32)

    def fn(pixels):
        return model(tf.reverse(pixels, axis=[-1]) - mean, training=False)

    dim = int(model.output.shape[-1])
    return Backbone(
        name=name,
        input_size=INPUT_SIZE,
        embedding_size=dim,
        normalization=f"bgr, minus mean {MEAN_BGR[name]}",
        fingerprint=file_hash(path)[:16],
        fn=fn,
    )
