"""Golden hashes: training and inference are bit-identical to commit e790470.

What is pinned, and how
-----------------------
Three tiny deterministic trainings (synthetic route, 20 neurons, 4 places per
module, 3 epochs) -- ``faithful`` (the published method, as the golden
checksums of commit 21823f1 pinned it), ``tuned`` (regular spike trains,
z-score readout, T chosen on the reference) and ``tuned`` with a calibration
query (epoch checkpoints, T and the pre-selection K chosen on calibration) --
then queries through every inference path: both spike-count engines, both
readouts, the :class:`Localizer` frame by frame (every module, pre-selection of
one module, both sequence matchers over 3 frames) and :func:`evaluate`. Trained
arrays, T and how it was chosen are pinned; how K (pre-selection) is chosen,
and what runs beyond K with sequences (tracking), are later features with
settings of their own, so the inference runs name K explicitly. Likewise switches
adopted into ``tuned`` later (:data:`LATER_TUNED_SWITCHES`: issue 16's query-time
inhibition, joint choice of T and K and inhibition ramp in training) run at their
values of the golden commit; ``test_profile_switches16.py`` tests what they do.

Each ARRAY is hashed with its dtype and shape (:func:`array_digest`), never a
whole ``.npz`` file, whose zip and NumPy headers change with NumPy versions
without any change in behaviour. Integer and float32/float64 arrays that come
straight from the kernels are hashed bit for bit; values that go through
``exp``/``log``/``sqrt`` in NumPy after the kernels (z-scores, confidences) are
rounded to 10 decimals first (:data:`ROUNDED`), because NumPy may pick a
different SIMD implementation of those functions on another CPU.

The expected values were computed by THIS file's code run against the package
at commit e790470 (before the reorganisation into subpackages)::

    git -C . worktree add /tmp/golden_base e790470
    PYTHONPATH=/tmp/golden_base NUMBA_CACHE_DIR=/tmp/golden_base_cache python test/test_golden.py
    git -C . worktree remove --force /tmp/golden_base

which prints the ``GOLDEN`` dictionary below. :func:`_api` imports the same
functions from either layout. A failure names every array that differs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

GOLDEN_COMMIT = "e790470"

# The trainings: the faithful one is the one the old whole-file checksums pinned
# (8 places of make_route(seed=5), names p0..p7, one worker).
CASES = {
    "faithful": dict(places=8, profile="faithful", calibration_places=0, checkpoints=()),
    "tuned": dict(places=8, profile="tuned", calibration_places=0, checkpoints=()),
    "tuned_calibrated": dict(places=12, profile="tuned", calibration_places=8, checkpoints=(2,)),
}
CONFIG = dict(n_neurons=20, places_per_module=4, epochs=3, assign_presentations=8)
ROUTE_SEED = 5
# Keys whose values pass through NumPy transcendental functions: rounded before hashing.
ROUNDED = ("zscore", "confidence", "seq_scores")
PARTS = ("network", "hyperactivity", "reference_stats", "reference_pixels")


# Switches adopted into tuned after the golden commit, at their values of that commit: the
# golden trainings pin the kernels and the training, and test_profile_switches16.py pins
# what each later switch does.
LATER_TUNED_SWITCHES = {"query_inhibition": 1.0, "threshold_at_k": False, "inhibition_start": 1.0}


def _tuned_of_the_golden_commit(tuned):
    later = {k: v for k, v in LATER_TUNED_SWITCHES.items() if hasattr(tuned, k)}
    return tuned.with_(**later) if later else tuned


def _api() -> SimpleNamespace:
    """The package functions the trainings use, from the current layout or the flat one of e790470.

    The layout is told by the package's files, not by trying imports: with the package
    installed in editable mode, a module missing from an old checkout on PYTHONPATH would be
    found in the installed tree instead, and the digests would mix two versions.
    """
    import vprsnn_ros

    root = Path(vprsnn_ros.__file__).parent
    if not (root / "snn").is_dir():  # the flat layout of e790470 (no subpackages)
        from vprsnn_ros.evaluation import evaluate
        from vprsnn_ros.localizer import Localizer
        from vprsnn_ros.model_io import load_network
        from vprsnn_ros.model_store import ModelStore
        from vprsnn_ros.network import NetworkConfig
        from vprsnn_ros.preprocess import preprocess_batch, rates_hz
        from vprsnn_ros.profiles import FAITHFUL, TUNED
        from vprsnn_ros.synthetic import make_route
        from vprsnn_ros.training import train_network
    else:
        from vprsnn_ros.eval.evaluation import evaluate
        from vprsnn_ros.io.preprocess import preprocess_batch
        from vprsnn_ros.io.synthetic import make_route
        from vprsnn_ros.localizer import Localizer
        from vprsnn_ros.model.network_io import load_network
        from vprsnn_ros.model.store import ModelStore
        from vprsnn_ros.snn.coding import rates_hz
        from vprsnn_ros.snn.network import NetworkConfig
        from vprsnn_ros.snn.profiles import FAITHFUL, TUNED
        from vprsnn_ros.train.training import train_network
    api = SimpleNamespace(evaluate=evaluate, preprocess_batch=preprocess_batch, make_route=make_route,
                          Localizer=Localizer, load_network=load_network, ModelStore=ModelStore,
                          rates_hz=rates_hz, NetworkConfig=NetworkConfig, train_network=train_network,
                          profiles={"faithful": FAITHFUL, "tuned": _tuned_of_the_golden_commit(TUNED)})
    for name, obj in vars(api).items():  # every function from the one checkout
        module = sys.modules[obj.__module__] if name != "profiles" else None
        assert module is None or Path(module.__file__).is_relative_to(root), (name, module)
    return api


def array_digest(a, decimals: int | None = None) -> str:
    """sha256 of an array's dtype, shape and C-order bytes (rounded to ``decimals`` first if given)."""
    a = np.asarray(a)
    if decimals is not None:
        a = np.round(a, decimals)
        a = np.where(a == 0, 0.0, a)  # -0.0 and 0.0 alike
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _json_digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def golden_digests(api: SimpleNamespace, name: str, work: Path) -> dict[str, str]:
    """Train case ``name`` in ``work`` and return {what: digest} for every pinned array."""
    case = CASES[name]
    n = case["places"]
    reference, query = api.make_route(n, seed=ROUTE_SEED)
    ref_pixels, query_pixels = api.preprocess_batch(reference), api.preprocess_batch(query)
    out = work / name
    kwargs = {}
    if case["calibration_places"]:
        kwargs = dict(calibration_places=case["calibration_places"],
                      calibration_query=query_pixels[:case["calibration_places"]],
                      epoch_checkpoints=list(case["checkpoints"]))
    api.train_network(api.NetworkConfig(**CONFIG), [ref_pixels], [f"p{k}" for k in range(n)], out,
                      workers=1, profile=api.profiles[case["profile"]], **kwargs)

    digests: dict[str, str] = {}
    store = api.ModelStore.open(out)
    parts = [p for p in sorted(store.parts()) if p in PARTS or p.startswith("module_")]
    for part in parts:
        arrays = store.read_part(part)
        for key in sorted(arrays):
            digests[f"{part}/{key}"] = array_digest(arrays[key])
    meta = store.meta
    # T and how it was chosen (calibration: the epoch count too, and every row of its table).
    choice = {key: meta.get(key) for key in ("hyperactive_threshold", "threshold_choice", "calibration")}
    choice["threshold_choice"] = {k: v for k, v in (choice["threshold_choice"] or {}).items() if k != "reason"}
    digests["meta/threshold_choice"] = _json_digest(choice)

    # Inference: frozen spike counts of every module (lane and scalar engines), both readouts.
    net = api.load_network(out)
    rates = api.rates_hz(query_pixels).astype(np.float64)
    ids = np.arange(n)
    counts = net.spike_counts(rates, ids)
    digests["query/counts_lanes"] = array_digest(counts)
    digests["query/counts_scalar"] = array_digest(net.spike_counts(rates, ids, engine="scalar"))
    digests["query/mean"] = array_digest(net.scores(counts, readout="mean"))
    digests["query/zscore"] = array_digest(net.scores(counts, readout="zscore"), 10)
    # One module per query (module engine) and its scores.
    top = np.stack([np.array([k // CONFIG["places_per_module"]]) for k in range(n)])
    one = net.spike_counts(rates, ids, modules=top)
    digests["query/counts_one_module"] = array_digest(one)
    digests["query/zscore_one_module"] = array_digest(net.scores(one, modules=top, readout="zscore"), 10)

    # The Localizer, frame by frame, with explicit settings (not the model's K, whose choice is not
    # the network's computation): every module; pre-selection of 1 module; both matchers over 3 frames.
    for label, settings in (("all", {"preselect_k": 0}), ("preselect1", {"preselect_k": 1}),
                            ("diagonal3", {"sequence_length": 3, "preselect_k": 0}),
                            ("seqslam3", {"sequence_length": 3, "sequence_matcher": "seqslam", "preselect_k": 0})):
        loc = api.Localizer(out, **settings)
        estimates = [loc.localize(image) for image in query]
        digests[f"localizer_{label}/place_id"] = array_digest(np.array([e.place_id for e in estimates], np.int64))
        digests[f"localizer_{label}/confidence"] = array_digest(np.array([e.confidence for e in estimates]), 10)
        digests[f"localizer_{label}/seq_scores"] = array_digest(np.stack([e.scores for e in estimates]), 10)

    # Offline evaluation: its score matrix and recall.
    report, S, _ = api.evaluate([net], query_pixels, split="all", preselect_k=0)
    digests["evaluate/S"] = array_digest(S, 10)
    digests["evaluate/recall"] = _json_digest(report["recall"])
    return digests


# --------------------------------------------------------------------------
# The expected digests (computed at commit e790470; see the module docstring)
# --------------------------------------------------------------------------

# computed at commit e790470 with numpy 2.4.6
GOLDEN: dict[str, dict[str, str]] = {
    'faithful': {
        'hyperactivity/active_images': '66c4ade1d6f43502ad969effaa28df18dad73e58a733f234d36674315d1af760',
        'module_0000/assignments': '0767c953b6568392b1ba40056e1f79219656dad6bc3bfa20bed7b8f791e8c875',
        'module_0000/epochs': '775cf042bc5de13d9389a64fc550ca93109c4a9fa603a719080beb5335673bed',
        'module_0000/theta': '5740ef881a3eea68f03c40f2a8b0652bef4e993ff01e27ee92660f64071f02d2',
        'module_0000/weights': '5896c6e6153ea520f3e729be9e800237fa845dfa9614faeeeb276823ad3a12c6',
        'module_0001/assignments': '232441e5a724698a64bb76d4496b847fab66647d9baacbfc574472ec0bb5c2a7',
        'module_0001/epochs': '775cf042bc5de13d9389a64fc550ca93109c4a9fa603a719080beb5335673bed',
        'module_0001/theta': 'ad6d40e8afc3e58f5c8f9e7bd270cdf5ee2aeb944af8993ebb4bb15587f534c4',
        'module_0001/weights': '9d7570e193616a86c16358ba4f7bbc737f7afc65b22b26af159d25bd5a025b9a',
        'network/delays': '8234aa7f4d3d014ea723bf815fc1bc24830db3fb4f415445d3245bcf71c4f981',
        'network/n_calibration_modules': '16a0d6e09e3da90bdedf6e1d1fa17b33c9a1aed8f69fd3bc63fbe669bb3c970d',
        'network/region_lengths': '357a455e308cc4e41942c0dc40087d89a965f25de987a1e7d74e976db73bcf18',
        'network/region_places': 'aa7153102521c576a1348156c35e27c99b6f7005db3a4b66573e8a9d08f0dc39',
        'reference_pixels/pixels': '947cb3c434ab38ecfacb92025c2aa3923cc59187de86f9ab55533dc204cb6505',
        'reference_stats/n_images': '6ce5f48251e927890fee1eb231162fabfba8a5e0ddc809060aa1d5e95ce484e9',
        'reference_stats/neuron_sum': '549b5dafaf4fe900b705775a9739dff3a53813a6fe3688c7979192f458841307',
        'reference_stats/pair_i': 'b6c7eef98b1bf1ef84e4d85329dd790b833dcb7e13569fc3aeff5699e32842d6',
        'reference_stats/pair_j': 'ed29db0d7516ed352d335645d84a33ac874ba201423937d8e672f919e2325d52',
        'reference_stats/pair_sum': '5f012770c24bede0582eebf7e79760dd85a1cd88732f056908f854a930c21fa0',
        'meta/threshold_choice': 'e4227c903ea5533e1a550a209a560b7c002dc5eaa08b673dea177f2a2e3cebc2',
        'query/counts_lanes': '1089b18840ccb378f4e7b489cc73bbfc3dc312f90d0ea70198b3127978fd4725',
        'query/counts_scalar': 'e4e8ea4c5056a44ff250a624793c4da0ae22d08f241c299c0c18e29c839d715b',
        'query/mean': 'cc86846a29a3ab690db212b00c7445a13e00f5edc89069a243eb364bccd0ad60',
        'query/zscore': 'e222d575d37f0fca0f6c5762d6c49c4ae3e1287c47b6ca451b907fde67b111bb',
        'query/counts_one_module': '2b921ae17299a7a315b3a77cec905719a7b43b13ab6c44f643bc90a7ff5bed53',
        'query/zscore_one_module': '95cbf5f26266e5f2195f351ea934f76b215646f22b6d6851f53afc5e33ca0fc4',
        'localizer_all/place_id': '8a00c65615fab485fd61bf5ed4a7635278be77bd20be0c51ed838d24598af5a4',
        'localizer_all/confidence': 'be62b7a3da9a75d5f8336e9aaad2021f1b4395120fbbd5dca3d7b024f20ef420',
        'localizer_all/seq_scores': 'bd4cbda1a1a53860bbd2d4a01aa001064273a37fe3125a8de4c13acd506334c3',
        'localizer_preselect1/place_id': 'fb979f68f7b58db048492411b16de45abe7844bcc08382dd55c17d119321dd95',
        'localizer_preselect1/confidence': '0dd461f90c070f44009196d4d426a7b9369d01b6c9f0686a1ff58d8487ae8b31',
        'localizer_preselect1/seq_scores': '7be292721aa592b6a8eeaf64c19ef536e2b4a99b18593c8b26a67768fcf32d5d',
        'localizer_diagonal3/place_id': '84c634e995c26da8d14ca237a42187ac211d1ca4fbb39dbc8ea52d9005993949',
        'localizer_diagonal3/confidence': '5c9a2608531c6eec437b76a90a0627c792670f2b7f90f2cb62fbb28ad1297eda',
        'localizer_diagonal3/seq_scores': '411c2e0e43c80844d65f09b63bfc34b84e7017ee31ec87913eb27b083a76a49b',
        'localizer_seqslam3/place_id': '84c634e995c26da8d14ca237a42187ac211d1ca4fbb39dbc8ea52d9005993949',
        'localizer_seqslam3/confidence': '6d2864da967fba40d016564dbb974072bd5be6dafad4e2f4f76ffa16f230be51',
        'localizer_seqslam3/seq_scores': '496bd55982b8630089d42f0b0f4aed4499d3914e6e140d864a5cd9acd98e3a63',
        'evaluate/S': 'bd4cbda1a1a53860bbd2d4a01aa001064273a37fe3125a8de4c13acd506334c3',
        'evaluate/recall': '582d91bb91416739f31b8912a2960ee828acb6bc1b1869e6b9e68931f2563764',
    },
    'tuned': {
        'hyperactivity/active_images': '3edfe23683e68732a3f233b7d0727e37ae04e9294075344f96fa0a1bbb94bde2',
        'module_0000/assignments': 'd22ae35a59100070312b2f691ce3628d676291dcdfe0501151cd092d066a633a',
        'module_0000/epochs': '775cf042bc5de13d9389a64fc550ca93109c4a9fa603a719080beb5335673bed',
        'module_0000/theta': 'cac021b35f94ec14a876882b0271b11bbc56af9d37f69579c16d11517b5ae6f8',
        'module_0000/weights': '304ad5940b59bc7b8c8ea1c8a556de6652b4a39617134dfea9340bd6473ba3ce',
        'module_0001/assignments': '42710dffb89f5bebc1923341ba66375adbd79d2019aae7ffad8ca1ac24d165e5',
        'module_0001/epochs': '775cf042bc5de13d9389a64fc550ca93109c4a9fa603a719080beb5335673bed',
        'module_0001/theta': '9f29181dd42ba3173fb7a411d7bec6c51851b169c04dad12355f9be58a8bba2f',
        'module_0001/weights': 'eb71a6dbd37522b6080e59a550da68c9819ed82f15437f6a41cf59c6cb596ad6',
        'network/delays': '8234aa7f4d3d014ea723bf815fc1bc24830db3fb4f415445d3245bcf71c4f981',
        'network/n_calibration_modules': '16a0d6e09e3da90bdedf6e1d1fa17b33c9a1aed8f69fd3bc63fbe669bb3c970d',
        'network/region_lengths': '357a455e308cc4e41942c0dc40087d89a965f25de987a1e7d74e976db73bcf18',
        'network/region_places': 'aa7153102521c576a1348156c35e27c99b6f7005db3a4b66573e8a9d08f0dc39',
        'reference_pixels/pixels': '947cb3c434ab38ecfacb92025c2aa3923cc59187de86f9ab55533dc204cb6505',
        'reference_stats/n_images': '6ce5f48251e927890fee1eb231162fabfba8a5e0ddc809060aa1d5e95ce484e9',
        'reference_stats/neuron_sum': 'cf7d5cd0f864fe53dd7857ea3661695102ccd651dc9e0cff48b48bbf6430dccc',
        'reference_stats/pair_i': '327d56b17c7a31c71b843e5b24dc287c13db3b920d3f004600c20922ba8b7662',
        'reference_stats/pair_j': '9376b65612a056ad99101d93e685f6c3fe0f94991b45032c702ce34808fb5030',
        'reference_stats/pair_sum': '034eb7dd97324b48b16867c18d396f96fff3391d07be9f1af363dd8a06418e71',
        'meta/threshold_choice': '57ef305884056dc0be0990f2476212aedbe62a38c9f6fe0fde1c207672059840',
        'query/counts_lanes': 'ddbccae7dcf18a428557b67c696133efd3b90d275b0974b2172db40fc510f95f',
        'query/counts_scalar': 'd7b885a600fdc8cf23f786e9e476bdb0ef7f9a00cbce600900c0910189773542',
        'query/mean': 'a39997b98fba6e5720046796cff25552f04ea956a411351ddab262cdaaecaf25',
        'query/zscore': 'ee0de5a2405362c215a2731709a4f1014e98fa9362eedacd685a9e84a2cdb505',
        'query/counts_one_module': '74bd4c62e538cc7596daf79e11f8e534888272e07f0f13551d053a30646bc798',
        'query/zscore_one_module': 'f69734fc1a98fd8eeb3ef32609a7eab2222896b6d0fb14bec101bfc1a8ad5d76',
        'localizer_all/place_id': '96816836696d2094308e307c2d3bbd472b6b23ec80d9877d8d032d40e83f3283',
        'localizer_all/confidence': '30af87f66ac22b24424354929ac0d952be67a5943b448afcb000b38ad6436801',
        'localizer_all/seq_scores': 'ee0de5a2405362c215a2731709a4f1014e98fa9362eedacd685a9e84a2cdb505',
        'localizer_preselect1/place_id': 'd2159ff302fe6353fdcfd38d3f89327e22a0df71863943a01f32dda7018f3e6a',
        'localizer_preselect1/confidence': '4e364d83179b7e4867b8cf861443f688f30b8ead2bacf566ecaefbd2e102319f',
        'localizer_preselect1/seq_scores': 'f69734fc1a98fd8eeb3ef32609a7eab2222896b6d0fb14bec101bfc1a8ad5d76',
        'localizer_diagonal3/place_id': 'be0c9c734d1127cb95246ffc022e431f217b66aebd3950e572fe175a89533246',
        'localizer_diagonal3/confidence': 'b288dd0b66db365208cfaefd60a9cd2e96579b221df27ec604809dc89bbdf8a7',
        'localizer_diagonal3/seq_scores': 'b0bb064c496a231eade558878d2eb76dacd0ef203657e05c3369711fa491b732',
        'localizer_seqslam3/place_id': 'be0c9c734d1127cb95246ffc022e431f217b66aebd3950e572fe175a89533246',
        'localizer_seqslam3/confidence': 'edefd7fd1b8a2ff97cf88fadd5a433de0bebb1e3afdef06bba5e84ab67d31820',
        'localizer_seqslam3/seq_scores': '392f894c4bcdb9c3f9f11197d5420c4f3a792aa48214d09ed52ddbb59af11717',
        'evaluate/S': 'ee0de5a2405362c215a2731709a4f1014e98fa9362eedacd685a9e84a2cdb505',
        'evaluate/recall': '6ee2b3d02976213945e4273f5d66e12db8ea0f98eecbee4795d2fad09127e4d7',
    },
    'tuned_calibrated': {
        'hyperactivity/active_images': '1c0bcf7f8b42010f06579f201976846e72bf688220703264a0ad6622219b488f',
        'module_0000/assignments': 'eaae4cd2b156a9af21384796ccc4cf5f09a502f5e86a7000f2ee0edbf05f720a',
        'module_0000/epochs': 'c41ce97eb909668b296dc38b65e75785efa81c9c8296e8850f541632b234a016',
        'module_0000/theta': 'ba3b5d6280356a14fc4550169ff1815d44fd61340ec89330816a77e8a0d7b8a3',
        'module_0000/weights': '422dca9517f2937f6c69d9abda17a166f5bb3c1fd4b838034b92f593f8f1e04e',
        'module_0001/assignments': 'd22d2b2689dce9429bd60b535a43c2e6f1c0d8dd6e4055a936a428d08b26c8d1',
        'module_0001/epochs': 'c41ce97eb909668b296dc38b65e75785efa81c9c8296e8850f541632b234a016',
        'module_0001/theta': '4cd6de8de4844fd1cb1a589ad23a9b17f8da346793c856c64c8584c8a5743098',
        'module_0001/weights': '1e0e56749cf8d177bc93412cf18e451c9f13d2d5996f0e38e718df8db43607d5',
        'module_0002/assignments': '4d2ccd5843124f55142c275d971595c009c40f4efb0ddf66fff36fcd505025ae',
        'module_0002/epochs': 'c41ce97eb909668b296dc38b65e75785efa81c9c8296e8850f541632b234a016',
        'module_0002/theta': '129f44c48668f7d1db943276e7fdddf7785d9384a3d85dc127c45158799cda1b',
        'module_0002/weights': '030a3298839e0e9c86121ca49d3f8ee3f79b6696c1179a4db5adc19ad9e44937',
        'network/delays': '8234aa7f4d3d014ea723bf815fc1bc24830db3fb4f415445d3245bcf71c4f981',
        'network/n_calibration_modules': 'c41ce97eb909668b296dc38b65e75785efa81c9c8296e8850f541632b234a016',
        'network/region_lengths': '8f08287edae21114c3f4cb8edaef99ddc1143ac106b68d17217b2632c746876c',
        'network/region_places': 'e0f1424c1bc66b7097c3d6e4e56d4242354945b7b35e13a16be23c0d52aa7167',
        'reference_pixels/pixels': 'c1819c6304f0a87d2b940a085ebe1aee4259f13b1c42196866d6169c8e062fc4',
        'reference_stats/n_images': 'da1b488bc652998257fad3258be565e285de89c755da79d1ca016ad0536fa12d',
        'reference_stats/neuron_sum': 'a000256d3602ec9a732fd3e80128bec2af5b922994355b721332c8688daf9fee',
        'reference_stats/pair_i': '3df2ad9c69ffe0e5649ebabde8df28d6a7f2ea1f19f7cc62322f5a74d48eb1ab',
        'reference_stats/pair_j': '1424f84d804be5fa07b24cd067b3fa6cc58d76b1013ce00a23add30fbe973746',
        'reference_stats/pair_sum': '43620b86a96f7420e4c5c2465e97ac643063f37f04200b408dce791d18f94406',
        'meta/threshold_choice': '52529cf84be801fb03ee54c64f6b24efd262f5f9c0751248cf02434c610d8341',
        'query/counts_lanes': '9ea5a6ab1892f2c93a6f7a3c2feada4999b34e556db2b85c29a0ded42f8c020f',
        'query/counts_scalar': 'f331970502d5c76486900dd7820561335cf2f4e81c727e6ae4d1fc04192d8fee',
        'query/mean': '99e6bf397cf5e2fc3c760ae213abc6a380742e7f7414a8f2860f0b6f6369f561',
        'query/zscore': 'a526fbfdb591b949ec7bfe97798dede5fde56400e1444674717e0b65b3f5cd4d',
        'query/counts_one_module': '6c83e56de6363f7b9f1a732363641e485136eb496f298a7e16023a1a5756744d',
        'query/zscore_one_module': '56501e26dd1446253a7bf550f74915bfac59be024810f06eec08f51f4169c56f',
        'localizer_all/place_id': '3190cbca911aba1b89bb9ae9f21917a863e891779246eed048438dc1c89b9e54',
        'localizer_all/confidence': 'c82ff3518347ed3351459211667219b6a7328fe98bb81de433e4d2861395e664',
        'localizer_all/seq_scores': 'a526fbfdb591b949ec7bfe97798dede5fde56400e1444674717e0b65b3f5cd4d',
        'localizer_preselect1/place_id': '1e119bbaddc014c405e7490de895dbfc1b53da21ad4568d5c30a03b5d6f70995',
        'localizer_preselect1/confidence': 'cc46aa9dd37eafae534aafc21015af50418133ee87e624f53cc0ea87d3ca1b04',
        'localizer_preselect1/seq_scores': '35800240d0da6142046dc557fdf65c501ffef2b9110f509ecd4dc0a84eb000ce',
        'localizer_diagonal3/place_id': '603c27783d45aad7af0a0bdda661b24628c685aaa7a767049ebd85518a896903',
        'localizer_diagonal3/confidence': 'a5239cb2371987bc4e16cb362b8d24a49c583e68b568d2fbb6659ab8e4b513b5',
        'localizer_diagonal3/seq_scores': '0a7b58dced096743f66c497a98d0e8edd7e58f82130097615e5bb06c19ce7468',
        'localizer_seqslam3/place_id': 'b0b1040e4e4cd502cec7163955748219bff3bdfb987e7463d952a07bd83b56dd',
        'localizer_seqslam3/confidence': 'b305b693506630b0a69ab57d982900f884d6673c472c8c70935cfea500c9c403',
        'localizer_seqslam3/seq_scores': 'fb544b203f1563ef865648fa4108bd8fa91fd3968a5e03a8c72d88a6d50c2746',
        'evaluate/S': 'a526fbfdb591b949ec7bfe97798dede5fde56400e1444674717e0b65b3f5cd4d',
        'evaluate/recall': '050d2db0a7480187fdb9c5a4b1d615089c1266fdfec481c5a7169c7dbff4cb67',
    },
}


def _differences(got: dict[str, str], expected: dict[str, str]) -> list[str]:
    missing = sorted(set(expected) - set(got))
    changed = sorted(k for k in expected if k in got and got[k] != expected[k])
    return [f"missing: {k}" for k in missing] + [f"differs: {k}" for k in changed]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_trained_arrays_and_queries_are_bit_identical_to_the_golden_commit(name, tmp_path):
    expected = GOLDEN[name]
    got = golden_digests(_api(), name, tmp_path)
    problems = _differences(got, expected)
    assert not problems, (f"{name}: {len(problems)} of {len(expected)} pinned arrays differ from commit "
                          f"{GOLDEN_COMMIT}:\n" + "\n".join(problems))


def test_array_digest_sees_bytes_dtype_and_shape_but_not_the_file_format():
    a = np.arange(6, dtype=np.int32)
    assert array_digest(a) == array_digest(a.copy())
    assert array_digest(a) != array_digest(a.astype(np.int64))          # dtype
    assert array_digest(a) != array_digest(a.reshape(2, 3))              # shape
    b = a.copy()
    b[3] += 1
    assert array_digest(a) != array_digest(b)                            # one value
    f = np.array([1.0, 2.0 + 1e-13])
    assert array_digest(f, 10) == array_digest(np.array([1.0, 2.0]), 10)  # rounded keys
    assert array_digest(np.array([-0.0]), 10) == array_digest(np.array([0.0]), 10)
    assert array_digest(np.asfortranarray(np.ones((2, 3)))) == array_digest(np.ones((2, 3)))


def _print_golden() -> None:
    import vprsnn_ros

    api = _api()
    print(f"# computed at commit {GOLDEN_COMMIT} with numpy {np.__version__}")
    print(f"# (package {Path(vprsnn_ros.__file__).parent})", file=sys.stderr)
    print("GOLDEN = {")
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            print(f"    {name!r}: {{")
            for key, digest in golden_digests(api, name, Path(tmp)).items():
                print(f"        {key!r}: {digest!r},")
            print("    },")
    print("}")
    root = Path(vprsnn_ros.__file__).parent
    strays = [m for m, mod in sys.modules.items() if m.startswith("vprsnn_ros") and getattr(mod, "__file__", None)
              and not Path(mod.__file__).is_relative_to(root)]
    assert not strays, f"modules of another checkout were loaded: {strays}"


if __name__ == "__main__":
    sys.exit(_print_golden())
