"""Is one network pass faster with another Keras backend or with XLA on the 2-core CPU?
(issue 31's speed target: 1024x1024 with TTA and size estimate <= 3 s warm.)

Times the reference's M3 on a 1024x1024 input through ``predict.predict_image`` (four
544-px tiles) and on one 544x544 tile: ``predict_on_batch``, a plain call, and the call
compiled with XLA (``tf.function(jit_compile=True)`` on TensorFlow, ``jax.jit`` on JAX).
Best of three after one warm-up call.

    python -m experiments.compare_backends                      # TensorFlow (the default)
    KERAS_BACKEND=jax python -m experiments.compare_backends

Found (2026-12-07, commit feea8ce, 2 idle AMD EPYC cores, TensorFlow 2.21, JAX 0.10.2, Keras
3.15; output in experiments/results/compare_backends.txt): TensorFlow's predict_on_batch is the
fastest (0.168 s per 544 tile, 0.74 s per 1024x1024 pass); XLA 0.239 s, JAX 0.263 s (jit
0.272 s). Neither backend nor compiler shortens a pass; the 3 s target needs fewer passes or
a smaller network.
"""
import time

import keras
import numpy as np

from nucleitut import predict
from nucleitut.pipeline import Pipeline


def best_of_three(fn, label):
    fn()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    print(f"{label}: {min(times):.3f} s", flush=True)


def main():
    networks = Pipeline.reference().networks
    print(keras.backend.backend(), list(networks))
    x = np.random.default_rng(0).uniform(-1, 1, (1024, 1024, 3)).astype(np.float32)
    model = next(iter(networks.values())).model
    best_of_three(lambda: predict.predict_image(model, x), "predict_image")
    tile = np.ascontiguousarray(x[None, :544, :544])
    best_of_three(lambda: model.predict_on_batch(tile), "predict_on_batch 544")
    best_of_three(lambda: model(tile, training=False), "call 544")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(lambda t: model(t, training=False), jit_compile=True)
        best_of_three(lambda: compiled(tile).numpy(), "tf xla 544")
    else:
        import jax

        compiled = jax.jit(lambda t: model(t, training=False))
        best_of_three(lambda: np.asarray(compiled(tile)), "jax jit 544")


if __name__ == "__main__":
    main()
