"""Frozen face backbones: crop (RGB uint8 pixels) -> L2-normalized embedding, as TF graphs.

`facenet` is the VGGFace2-trained Inception-ResNet-v1 frozen graph from models/; `vgg16`,
`resnet50` and `senet50` are the keras_vggface architectures, loading a user's weights file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ModelError, UserError
from edge.hashing import file_hash

log = logging.getLogger("convert.backbone")

BACKBONES = ("facenet", "vgg16", "resnet50", "senet50")
FACENET_FILE = "graph_final.pb"
# Nodes of graph_final.pb that pin the batch to 1; rewritten so batches embed in one call.
_FACENET_RESHAPES = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1": [-1, 512],
}


@dataclass
class Backbone:
    """A frozen embedding network; `fn` maps float32 RGB pixels 0..255 (N,S,S,3) to (N,D)."""

    name: str
    input_size: int
    embedding_size: int
    normalization: str  # what the graph does to the pixels (recorded in faces.json)
    fingerprint: str  # identifies the weights, for the embedding cache
    fn: Callable

    def embed(self, crops_rgb: np.ndarray, batch: int = 16, desc: str = "embed") -> np.ndarray:
        """Embeddings (N, D) float32, L2-normalized, of uint8 RGB crops (N, S, S, 3)."""
        import tensorflow as tf

        from edge.progress import progress

        out = []
        with progress(total=len(crops_rgb), desc=desc, unit="crop") as bar:
            for i in range(0, len(crops_rgb), batch):
                x = tf.constant(np.asarray(crops_rgb[i : i + batch], dtype=np.float32))
                out.append(np.asarray(self.fn(x), dtype=np.float32))
                bar.update(len(x))
        emb = np.concatenate(out) if out else np.zeros((0, self.embedding_size), np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def load_facenet(models_dir: Path) -> Backbone:
    """FaceNet (VGGFace2) from models/graph_final.pb; fixed standardization (x - 127.5) / 128."""
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util

    path = Path(models_dir) / FACENET_FILE
    if not path.is_file():
        raise ModelError(f"{path}: FaceNet graph not found (run ./setup.sh to fetch it)")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception:  # protobuf raises its own DecodeError
        raise ModelError(f"{path}: not a TensorFlow frozen graph") from None
    nodes = {n.name: n for n in graph_def.node}
    if "input" not in nodes or "embeddings" not in nodes:
        raise ModelError(f"{path}: not the FaceNet graph (no `input`/`embeddings` nodes)")
    for name, shape in _FACENET_RESHAPES.items():
        shape_node = nodes.get(nodes[name].input[1]) if name in nodes else None
        if shape_node is not None and shape_node.op == "Const":
            shape_node.attr["value"].tensor.CopyFrom(
                tensor_util.make_tensor_proto(np.array(shape, dtype=np.int32))
            )

    def _import() -> None:
        pixels = tf.compat.v1.placeholder(tf.float32, [None, 160, 160, 3], name="pixels")
        tf.import_graph_def(
            graph_def, input_map={"input:0": (pixels - 127.5) / 128.0}, name="facenet"
        )

    wrapped = tf.compat.v1.wrap_function(_import, [])
    fn = wrapped.prune(
        wrapped.graph.get_tensor_by_name("pixels:0"),
        wrapped.graph.get_tensor_by_name("facenet/embeddings:0"),
    )
    fn._edge_keepalive = wrapped  # the pruned function needs its graph alive
    return Backbone(
        name="facenet",
        input_size=160,
        embedding_size=512,
        normalization="rgb, (x - 127.5) / 128",
        fingerprint=file_hash(path)[:16],
        fn=fn,
    )


def load_backbone(name: str, models_dir: Path, weights: str | None = None) -> Backbone:
    """The backbone called `name`; UserError (one line) for a bad name or weights file."""
    if name == "facenet":
        if weights:
            raise UserError(
                "--weights is for vgg16/resnet50/senet50; facenet uses models/graph_final.pb"
            )
        return load_facenet(models_dir)
    if name in ("vgg16", "resnet50", "senet50"):
        from convert.vggface import load_vggface

        return load_vggface(name, weights)
    raise UserError(f"unknown backbone {name!r} (choose from {', '.join(BACKBONES)})")
