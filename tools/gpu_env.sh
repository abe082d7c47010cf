# Sourced by the GPU scripts (full_profile_gpu.sh, reference_gpu.sh) on the project's lent
# machines, which have JAX but no TensorFlow and no internet: installs the carried wheels
# (keras, namex, optree, pooch, platformdirs in .carry/wheels) when Keras is missing, and sets
# NUCLEITUT_DATA to the carried data pack (.carry/stage1_train_pack.zip, made by
# tools/make_pack.py; or .carry/pack_without_sample.zip, completed here with the package's
# sample by make_pack.py --add-sample) unless it is set already.
if ! python3 -c "import keras" 2>/dev/null; then
  python3 -m pip install -q --no-deps --no-index --target /tmp/nucleitut-site .carry/wheels/*.whl
  export PYTHONPATH=/tmp/nucleitut-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export NUCLEITUT_CACHE=${NUCLEITUT_CACHE:-/tmp/nucleitut-cache}
if [ -z "${NUCLEITUT_DATA:-}" ] && [ ! -e .carry/stage1_train_pack.zip ] && [ -e .carry/pack_without_sample.zip ]; then
  python3 tools/make_pack.py --add-sample .carry/pack_without_sample.zip /tmp/stage1_train_pack.zip
  export NUCLEITUT_DATA=/tmp/stage1_train_pack.zip
fi
export NUCLEITUT_DATA=${NUCLEITUT_DATA:-$PWD/.carry/stage1_train_pack.zip}
