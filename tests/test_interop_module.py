"""``mx.mod.Module`` and ``mx.model`` checkpoints against real MXNet 1.9.1.

One training script, written for MXNet 1.x, runs unchanged in MXNet (interop
virtualenv) and here with ``mx`` bound to symgrad, from the same data and
initial parameters: the metric values of every batch and epoch (as ``fit`` logs
them), ``score``, ``predict`` and the trained parameters must agree. Each side
then resumes training from the other's checkpoint (symbol, parameters and
optimizer states), and loads the other's ``do_checkpoint`` files. A recurrent
cell's exported graph, whose begin state is ``_zeros`` of shape ``(0, 8)``,
infers its shapes and runs here to MXNet's numbers.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad

pytestmark = pytest.mark.interop

SCRIPT = r"""
import json, logging, os, sys
import numpy as np

work, mode = sys.argv[1], sys.argv[2]
messages = []


class Collect(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())


logger = logging.getLogger("module-interop")
logger.setLevel(logging.INFO)
logger.addHandler(Collect())
logger.propagate = False

d = np.load(os.path.join(work, "data.npz"))
train = mx.io.NDArrayIter(d["X"], d["y"], batch_size=16)  # 60 samples: the last batch pads
val = mx.io.NDArrayIter(d["Xv"], d["yv"], batch_size=16)
batches = []


def on_batch(param):
    batches.append([param.epoch, param.nbatch] +
                   [float(v) for _, v in param.eval_metric.get_name_value()])


opt_params = {"learning_rate": 0.2, "momentum": 0.9, "wd": 0.001}
if mode == "fresh":
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=16, name="fc1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.FullyConnected(net, num_hidden=3, name="fc2")
    net = mx.sym.SoftmaxOutput(net, name="softmax")
    init = np.load(os.path.join(work, "init.npz"))
    arg_params = {k: mx.nd.array(init[k]) for k in init.files}
    mod = mx.mod.Module(net, logger=logger)
    mod.fit(train, eval_data=val, eval_metric=["acc", "ce"], optimizer="sgd",
            optimizer_params=opt_params, arg_params=arg_params, num_epoch=3,
            batch_end_callback=on_batch,
            epoch_end_callback=mx.callback.do_checkpoint(os.path.join(work, "ck")))
    mod.save_checkpoint(os.path.join(work, "mod"), 3, save_optimizer_states=True)
else:  # resume from the checkpoint in the directory argv[3]
    mod = mx.mod.Module.load(os.path.join(sys.argv[3], "mod"), 3,
                             load_optimizer_states=True, logger=logger)
    mod.fit(train, eval_data=val, eval_metric=["acc", "ce"], optimizer="sgd",
            optimizer_params=opt_params, begin_epoch=3, num_epoch=5,
            batch_end_callback=on_batch)
score = mod.score(val, "acc")
pred = mod.predict(val)
np.save(os.path.join(work, mode + "-pred.npy"), pred.asnumpy())
args, auxs = mod.get_params()
np.savez(os.path.join(work, mode + "-params.npz"), **{k: v.asnumpy() for k, v in args.items()})
json.dump({"log": [m for m in messages if "Time cost" not in m], "batches": batches,
           "score": [[n, float(v)] for n, v in score],
           "output_shapes": [[n, list(s)] for n, s in mod.output_shapes]},
          open(os.path.join(work, mode + ".json"), "w"))
"""


def _make_data(work) -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] > 0).astype(np.float32) + (X[:, 2] > 0.8)).astype(np.float32)
    Xv = rng.normal(size=(40, 6)).astype(np.float32)
    yv = ((Xv[:, 0] + Xv[:, 1] > 0).astype(np.float32) + (Xv[:, 2] > 0.8)).astype(np.float32)
    np.savez(work / "data.npz", X=X, y=y, Xv=Xv, yv=yv)
    np.savez(
        work / "init.npz",
        fc1_weight=rng.normal(0, 0.4, (16, 6)).astype(np.float32),
        fc1_bias=rng.normal(0, 0.1, (16,)).astype(np.float32),
        fc2_weight=rng.normal(0, 0.4, (3, 16)).astype(np.float32),
        fc2_bias=np.zeros(3, np.float32),
    )


def _run_script(source: str, work, *args: str) -> None:
    """Run an MXNet script here, with ``mx`` bound to symgrad."""
    argv = sys.argv
    sys.argv = ["script", str(work), *args]
    try:
        exec(source, {"mx": symgrad, "__name__": "__main__"})
    finally:
        sys.argv = argv


def _run_here(work, *args: str) -> None:
    _run_script(SCRIPT, work, *args)


def _parse_log(lines: list[str]) -> list[tuple[str, float]]:
    """``Epoch[0] Train-accuracy=0.5`` lines as (key, value) pairs."""
    pairs = []
    for line in lines:
        key, _, value = line.rpartition("=")
        pairs.append((key, float(value)))
    return pairs


def _assert_same_run(ours: dict, theirs: dict) -> None:
    log_ours, log_theirs = _parse_log(ours["log"]), _parse_log(theirs["log"])
    assert [k for k, _ in log_ours] == [k for k, _ in log_theirs]
    assert any("Validation-cross-entropy" in k for k, _ in log_ours)
    np.testing.assert_allclose(
        [v for _, v in log_ours], [v for _, v in log_theirs], rtol=1e-4, atol=1e-5
    )
    assert len(ours["batches"]) == len(theirs["batches"]) > 0
    np.testing.assert_allclose(ours["batches"], theirs["batches"], rtol=1e-4, atol=1e-5)
    assert ours["score"][0][0] == theirs["score"][0][0] == "accuracy"
    assert ours["score"][0][1] == pytest.approx(theirs["score"][0][1], abs=1e-6)
    assert ours["output_shapes"] == theirs["output_shapes"]


@pytest.fixture(scope="module")
def runs(mxnet_python, tmp_path_factory):
    """Both libraries' fresh runs, and each one's resume from the other's files."""
    here = tmp_path_factory.mktemp("symgrad")
    there = tmp_path_factory.mktemp("mxnet")
    _make_data(here)
    for name in ("data.npz", "init.npz"):
        (there / name).write_bytes((here / name).read_bytes())
    run_mxnet(mxnet_python, "import mxnet as mx\n" + SCRIPT, there, str(there), "fresh")
    _run_here(here, "fresh")
    run_mxnet(mxnet_python, "import mxnet as mx\n" + SCRIPT, there, str(there), "resume", str(here))
    _run_here(here, "resume", str(there))
    return here, there


def test_fit_score_predict_match_mxnet(runs):
    here, there = runs
    ours = json.loads((here / "fresh.json").read_text())
    theirs = json.loads((there / "fresh.json").read_text())
    _assert_same_run(ours, theirs)
    # training must have moved: the last epoch's accuracy beats the first batch's
    assert ours["batches"][-1][2] > ours["batches"][0][2]
    pred_ours, pred_theirs = np.load(here / "fresh-pred.npy"), np.load(there / "fresh-pred.npy")
    assert pred_ours.shape == (40, 3)  # the last batch's padding removed
    np.testing.assert_allclose(pred_ours, pred_theirs, rtol=1e-4, atol=1e-5)
    params_ours, params_theirs = (
        np.load(here / "fresh-params.npz"),
        np.load(there / "fresh-params.npz"),
    )
    assert sorted(params_ours.files) == sorted(params_theirs.files)
    for name in params_ours.files:
        np.testing.assert_allclose(
            params_ours[name], params_theirs[name], rtol=1e-4, atol=1e-5, err_msg=name
        )


def test_resume_from_each_others_checkpoints(runs):
    """MXNet continues from symgrad's checkpoint (symbol, params, momentum states)
    and symgrad from MXNet's: the two continuations agree."""
    here, there = runs
    ours = json.loads((here / "resume.json").read_text())
    theirs = json.loads((there / "resume.json").read_text())
    _assert_same_run(ours, theirs)
    assert ours["log"][0].startswith("Epoch[3] Train-accuracy=")
    np.testing.assert_allclose(
        np.load(here / "resume-pred.npy"), np.load(there / "resume-pred.npy"), rtol=1e-4, atol=1e-5
    )
    for name, value in np.load(here / "resume-params.npz").items():
        np.testing.assert_allclose(
            value, np.load(there / "resume-params.npz")[name], rtol=1e-4, atol=1e-5, err_msg=name
        )


BATCHNORM_SCRIPT = r"""
import json, os, sys
import numpy as np

work = sys.argv[1]
d = np.load(os.path.join(work, "data.npz"))
train = mx.io.NDArrayIter(d["X"] * 2 + 1, d["y"], batch_size=20)
data = mx.sym.var("data")
# no bias before BatchNorm: its gradient is rounding noise, which Adam magnifies
net = mx.sym.FullyConnected(data, num_hidden=16, no_bias=True, name="fc1")
net = mx.sym.BatchNorm(net, fix_gamma=False, momentum=0.8, name="bn1")
net = mx.sym.Activation(net, act_type="relu", name="relu1")
net = mx.sym.FullyConnected(net, num_hidden=3, name="fc2")
net = mx.sym.SoftmaxOutput(net, name="softmax", normalization="batch")
init = np.load(os.path.join(work, "init.npz"))
mod = mx.mod.Module(net)
mod.bind(train.provide_data, train.provide_label)
# parameters the file lacks (fc1, bn's gamma/beta, the statistics) come from the
# initializer: gamma 1, beta 0, moving mean 0, moving var 1 as MXNet names them
mod.init_params(mx.init.Constant(0.05), arg_params={"fc2_weight": mx.nd.array(init["fc2_weight"])},
                allow_missing=True)
start = {k: v.asnumpy().tolist() for d_ in mod.get_params() for k, v in d_.items()}
metric = mx.metric.create(["acc", "ce"])
mod.fit(train, eval_metric=metric, optimizer="adam", optimizer_params={"learning_rate": 0.01},
        num_epoch=3)
args, auxs = mod.get_params()
json.dump({"start": start, "score": mod.score(train, "ce"),
           "params": {k: v.asnumpy().tolist() for k, v in list(args.items()) + list(auxs.items())},
           "pred": mod.predict(train).asnumpy().tolist()},
          open(os.path.join(work, "bn.json"), "w"))
"""


def test_batchnorm_network_with_adam_matches_mxnet(runs, mxnet_python):
    """Missing parameters from the initializer (BatchNorm's statistics by their
    ``__init__`` attrs), Adam, ``normalization='batch'`` and the moving averages
    as aux params: as MXNet trains them."""
    here, there = runs
    run_mxnet(mxnet_python, "import mxnet as mx\n" + BATCHNORM_SCRIPT, there, str(there))
    _run_script(BATCHNORM_SCRIPT, here)
    ours = json.loads((here / "bn.json").read_text())
    theirs = json.loads((there / "bn.json").read_text())
    assert ours["start"] == theirs["start"]
    assert ours["score"][0][0] == theirs["score"][0][0] == "cross-entropy"
    assert ours["score"][0][1] == pytest.approx(theirs["score"][0][1], rel=1e-4)
    assert sorted(ours["params"]) == sorted(theirs["params"])
    assert "bn1_moving_var" in ours["params"]
    for name, value in ours["params"].items():
        np.testing.assert_allclose(
            value, theirs["params"][name], rtol=1e-4, atol=1e-5, err_msg=name
        )
    np.testing.assert_allclose(ours["pred"], theirs["pred"], rtol=1e-4, atol=1e-5)


FEEDFORWARD_SCRIPT = r"""
import json, logging, os, sys, warnings
import numpy as np

work = sys.argv[1]
messages = []


class Collect(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())


# the root logger: the validation lines come from LogValidationMetricsCallback,
# which logs there
logger = logging.getLogger()
level = logger.level
logger.setLevel(logging.INFO)
collect = Collect()
logger.addHandler(collect)
warnings.simplefilter("ignore", DeprecationWarning)
d = np.load(os.path.join(work, "data.npz"))
init = np.load(os.path.join(work, "init.npz"))
train = mx.io.NDArrayIter(d["X"], d["y"], batch_size=16)
val = mx.io.NDArrayIter(d["Xv"], d["yv"], batch_size=16)
net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=16, name="fc1")
net = mx.sym.Activation(net, act_type="relu", name="relu1")
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=3, name="fc2"),
                           name="softmax")
batches = []
model = mx.model.FeedForward(net, num_epoch=2, epoch_size=3, numpy_batch_size=16,
                             arg_params={k: mx.nd.array(init[k]) for k in init.files},
                             learning_rate=0.1, momentum=0.9, wd=0.01)
model.fit(train, eval_data=val, logger=logger,
          batch_end_callback=lambda p: batches.append([p.epoch, p.nbatch, p.eval_metric.get()[1]]))
model.save(os.path.join(work, "ff"))
again = mx.model.FeedForward.load(os.path.join(work, "ff"), 2)
out, data, label = again.predict(d["Xv"], return_data=True)
json.dump({"log": [m for m in messages if "Time cost" not in m], "batches": batches,
           "score": float(model.score(val)), "pred": out.tolist(), "data": data.tolist(),
           "params": {k: v.asnumpy().tolist() for k, v in model.arg_params.items()},
           "begin": again.begin_epoch}, open(os.path.join(work, "ff.json"), "w"))
logger.removeHandler(collect)
logger.setLevel(level)
"""


def test_feedforward_matches_mxnet(runs, mxnet_python):
    """The deprecated FeedForward: its loop (epoch_size batches an epoch, the
    iterator reset only when exhausted, batch numbers from 1), its log lines,
    save/load and predict with return_data."""
    here, there = runs
    run_mxnet(mxnet_python, "import mxnet as mx\n" + FEEDFORWARD_SCRIPT, there, str(there))
    _run_script(FEEDFORWARD_SCRIPT, here)
    ours = json.loads((here / "ff.json").read_text())
    theirs = json.loads((there / "ff.json").read_text())
    assert ours["log"][0] == theirs["log"][0] == "Start training with [cpu(0)]"
    # 3 batches of 4 an epoch: epoch 0 leaves the iterator at batch 3, epoch 1
    # exhausts it after one batch, resets it and goes on
    plain = [line for line in ours["log"][:-1] if "=" not in line]
    assert (
        plain
        == [line for line in theirs["log"][:-1] if "=" not in line]
        == ["Start training with [cpu(0)]", "Epoch[1] Resetting Data Iterator"]
    )
    for log in (ours["log"], theirs["log"]):
        assert log[-1].startswith('Saved checkpoint to "') and log[-1].endswith('ff-0002.params"')
    valued_ours = _parse_log([line for line in ours["log"][:-1] if "=" in line])
    valued_theirs = _parse_log([line for line in theirs["log"][:-1] if "=" in line])
    assert (
        [k for k, _ in valued_ours]
        == [k for k, _ in valued_theirs]
        == ["Epoch[0] Validation-accuracy", "Epoch[1] Validation-accuracy"]
    )
    np.testing.assert_allclose(
        [v for _, v in valued_ours], [v for _, v in valued_theirs], atol=1e-6
    )
    assert [b[:2] for b in ours["batches"]] == [[0, 1], [0, 2], [0, 3], [1, 1], [1, 2], [1, 3]]
    np.testing.assert_allclose(ours["batches"], theirs["batches"], atol=1e-6)
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-6)
    assert ours["begin"] == theirs["begin"] == 2
    np.testing.assert_allclose(ours["pred"], theirs["pred"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours["data"], theirs["data"])
    for name, value in ours["params"].items():
        np.testing.assert_allclose(
            value, theirs["params"][name], rtol=1e-4, atol=1e-5, err_msg=name
        )


EXPORT_BODY = r"""
import numpy as np
import mxnet as mx
mx.random.seed(11)
net = mx.gluon.nn.HybridSequential(prefix="body_")
with net.name_scope():
    net.add(mx.gluon.nn.Dense(12, activation="relu"), mx.gluon.nn.BatchNorm(),
            mx.gluon.nn.Dense(8, activation="tanh"))
net.initialize(mx.init.Xavier())
net.hybridize()
net(mx.nd.ones((2, 6)))
net.export("body", epoch=5)
"""

FINETUNE_SCRIPT = r"""
import json, os, sys
import numpy as np

work, body = sys.argv[1], sys.argv[2]
d = np.load(os.path.join(work, "data.npz"))
sym, args, auxs = mx.model.load_checkpoint(body, 5)
features = sym.get_internals()["body_dense1_tanh_fwd_output"]
head = mx.sym.FullyConnected(features, num_hidden=3, name="head")
net = mx.sym.SoftmaxOutput(head, name="softmax")
frozen = [n for n in net.list_arguments() if n.startswith("body_")]
mod = mx.mod.Module(net, fixed_param_names=frozen)
train = mx.io.NDArrayIter(d["X"], d["y"], batch_size=20)
mod.fit(train, eval_metric="ce", optimizer="sgd", arg_params=args, aux_params=auxs,
        allow_missing=True, initializer=mx.init.Constant(0.05),
        optimizer_params={"learning_rate": 0.5}, num_epoch=3)
new_args, new_auxs = mod.get_params()
json.dump({"score": mod.score(train, "ce"), "frozen": frozen,
           "params": {k: v.asnumpy().tolist() for k, v in new_args.items()},
           "aux": {k: v.asnumpy().tolist() for k, v in new_auxs.items()},
           "unchanged": all(np.array_equal(new_args[k].asnumpy(), args[k].asnumpy())
                            for k in frozen)},
          open(os.path.join(work, "finetune.json"), "w"))
"""


def test_fine_tuning_an_exported_gluon_model_matches_mxnet(runs, mxnet_python):
    """The classic fine-tuning recipe: load a checkpoint, cut it at an internal
    output, add a new head, freeze the body with ``fixed_param_names`` and fit
    (the head from the initializer, the body from the file, BatchNorm's
    statistics as aux params)."""
    here, there = runs
    body = str(there / "body")
    # one MXNet process exports the body (into its working directory) and fine-tunes
    run_mxnet(mxnet_python, EXPORT_BODY + FINETUNE_SCRIPT, there, str(there), body)
    _run_script(FINETUNE_SCRIPT, here, body)
    ours = json.loads((here / "finetune.json").read_text())
    theirs = json.loads((there / "finetune.json").read_text())
    assert ours["frozen"] == theirs["frozen"] and "body_dense0_weight" in ours["frozen"]
    assert ours["unchanged"] and theirs["unchanged"]
    assert ours["score"][0][0] == "cross-entropy"
    assert ours["score"][0][1] == pytest.approx(theirs["score"][0][1], rel=1e-4)
    assert sorted(ours["params"]) == sorted(theirs["params"])
    for name, value in list(ours["params"].items()) + list(ours["aux"].items()):
        expected = theirs["params"].get(name, theirs["aux"].get(name))
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5, err_msg=name)


STATISTICS_SCRIPT = r"""
import json, sys
import numpy as np

data = mx.sym.var("data")
net = mx.sym.BatchNorm(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="bn")
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=2, name="out"),
                           name="softmax")
rng = np.random.RandomState(0)
X, y = mx.nd.array(rng.randn(4, 5)), mx.nd.array([0, 1, 0, 1])
start = {"fc_weight": mx.nd.array(rng.randn(3, 5)), "fc_bias": mx.nd.zeros((3,)),
         "bn_gamma": mx.nd.ones((3,)), "bn_beta": mx.nd.zeros((3,)),
         "out_weight": mx.nd.array(rng.randn(2, 3)), "out_bias": mx.nd.zeros((2,))}
moved = {}
for key, fixed in [("none", []), ("body", ["fc_weight", "fc_bias", "bn_gamma", "bn_beta"]),
                   ("below", ["fc_weight", "fc_bias"])]:
    mod = mx.mod.Module(net, fixed_param_names=fixed)
    mod.bind([("data", (4, 5))], [("softmax_label", (4,))])
    mod.set_params(start, {"bn_moving_mean": mx.nd.zeros((3,)),
                           "bn_moving_var": mx.nd.ones((3,))})
    mod.init_optimizer(optimizer_params={"learning_rate": 0.0})
    mod.forward(mx.io.DataBatch([X], [y]), is_train=True)
    mod.backward()
    mx.nd.waitall()  # MXNet writes the statistics asynchronously, in the backward
    mod.update()  # marks the parameters dirty: get_params reads the executor's
    moved[key] = mod.get_params()[1]["bn_moving_mean"].asnumpy().tolist()
json.dump(moved, open(sys.argv[1], "w"))
"""


def test_batchnorm_statistics_move_only_where_a_gradient_passes(mxnet_python, tmp_path):
    """MXNet updates BatchNorm's moving statistics in its backward, which is skipped
    when neither its data nor gamma/beta needs a gradient (a frozen body)."""
    run_mxnet(
        mxnet_python,
        "import mxnet as mx\n" + STATISTICS_SCRIPT,
        tmp_path,
        str(tmp_path / "theirs.json"),
    )
    _run_script(STATISTICS_SCRIPT, str(tmp_path / "ours.json"))
    ours = json.loads((tmp_path / "ours.json").read_text())
    theirs = json.loads((tmp_path / "theirs.json").read_text())
    assert ours["body"] == theirs["body"] == [0.0, 0.0, 0.0]
    assert any(abs(v) > 1e-3 for v in theirs["below"])  # gamma/beta still learn there
    for key in ("none", "below"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)


INPUT_GRAD_SCRIPT = r"""
import json, sys
import numpy as np

rng = np.random.RandomState(1)
data = mx.sym.var("data")
net = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, pad=(1, 1), name="conv")
net = mx.sym.Pooling(mx.sym.Activation(net, act_type="relu"), kernel=(2, 2), stride=(2, 2),
                     pool_type="max")
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=3, name="fc"),
                           name="softmax")
mod = mx.mod.Module(net)
mod.bind([("data", (2, 1, 6, 6))], [("softmax_label", (2,))], inputs_need_grad=True)
mod.init_params(arg_params={"conv_weight": mx.nd.array(rng.randn(4, 1, 3, 3)),
                            "conv_bias": mx.nd.zeros((4,)),
                            "fc_weight": mx.nd.array(rng.randn(3, 36) * 0.3),
                            "fc_bias": mx.nd.zeros((3,))})
x = mx.nd.array(rng.randn(2, 1, 6, 6))
mod.forward(mx.io.DataBatch([x], [mx.nd.array([2, 0])]), is_train=True)
mod.backward()
json.dump({"grad": mod.get_input_grads()[0].asnumpy().tolist(),
           "out": mod.get_outputs()[0].asnumpy().tolist(),
           "shapes": [[n, list(s)] for n, s in mod.output_shapes]}, open(sys.argv[1], "w"))
"""


def test_input_gradients_of_a_small_cnn_match_mxnet(mxnet_python, tmp_path):
    """``inputs_need_grad``: the data gradient (as adversarial-example code reads
    it) of Convolution, Pooling, FullyConnected and SoftmaxOutput."""
    run_mxnet(
        mxnet_python,
        "import mxnet as mx\n" + INPUT_GRAD_SCRIPT,
        tmp_path,
        str(tmp_path / "theirs.json"),
    )
    _run_script(INPUT_GRAD_SCRIPT, str(tmp_path / "ours.json"))
    ours = json.loads((tmp_path / "ours.json").read_text())
    theirs = json.loads((tmp_path / "theirs.json").read_text())
    assert ours["shapes"] == theirs["shapes"] == [["softmax_output", [2, 3]]]
    np.testing.assert_allclose(ours["out"], theirs["out"], rtol=1e-5, atol=1e-6)
    assert np.abs(np.array(theirs["grad"])).sum() > 0
    np.testing.assert_allclose(ours["grad"], theirs["grad"], rtol=1e-4, atol=1e-6)


BUCKETING_SCRIPT = r'''
import json, logging, sys
import numpy as np

rng = np.random.RandomState(5)
messages = []


class Collect(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())


logger = logging.getLogger("bucketing-interop")
logger.setLevel(logging.INFO)
logger.addHandler(Collect())
logger.propagate = False


class Buckets(mx.io.DataIter):
    """Batches of token sequences of lengths 3 and 5, in a fixed order."""

    def __init__(self, batches):
        super().__init__(batch_size=4)
        self.batches, self.cursor = batches, 0
        self.default_bucket_key = 5
        self.provide_data = [mx.io.DataDesc("data", (4, 5))]
        self.provide_label = [mx.io.DataDesc("softmax_label", (4,))]

    def reset(self):
        self.cursor = 0

    def next(self):
        if self.cursor == len(self.batches):
            raise StopIteration
        tokens, labels = self.batches[self.cursor]
        self.cursor += 1
        return mx.io.DataBatch([mx.nd.array(tokens)], [mx.nd.array(labels)], pad=0,
                               bucket_key=tokens.shape[1],
                               provide_data=[mx.io.DataDesc("data", tokens.shape)],
                               provide_label=[mx.io.DataDesc("softmax_label", (4,))])


batches = []
for length in (5, 3, 3, 5, 3, 5):
    tokens = rng.randint(0, 10, size=(4, length))
    batches.append((tokens.astype(np.float32), (tokens[:, 0] % 3).astype(np.float32)))
train = Buckets(batches)


def sym_gen(length):
    data = mx.sym.var("data")
    embed = mx.sym.Embedding(data, input_dim=10, output_dim=4, name="embed")
    pooled = mx.sym.sum(embed, axis=1) / length
    net = mx.sym.FullyConnected(pooled, num_hidden=3, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax"), ("data",), ("softmax_label",)


start = {"embed_weight": mx.nd.array(rng.randn(10, 4)),
         "fc_weight": mx.nd.array(rng.randn(3, 4) * 0.5), "fc_bias": mx.nd.zeros((3,))}
mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=5, logger=logger)
mod.fit(train, eval_data=train, eval_metric=["acc", "ce"], arg_params=start,
        optimizer="sgd", optimizer_params={"learning_rate": 0.3, "momentum": 0.9},
        num_epoch=4)
args, _ = mod.get_params()
mod.save_checkpoint(sys.argv[1][:-len(".json")], 4)
if len(sys.argv) > 2:  # the other library's checkpoint predicts here too
    other = mx.mod.BucketingModule.load(sys.argv[2], 4, sym_gen=sym_gen, default_bucket_key=5)
    other.bind(train.provide_data, train.provide_label, for_training=False)
    np.save(sys.argv[1][:-len(".json")] + "-other.npy", other.predict(train).asnumpy())
json.dump({"log": [m for m in messages if "Time cost" not in m],
           "buckets": sorted(mod._buckets), "pred": mod.predict(train).asnumpy().tolist(),
           "params": {k: v.asnumpy().tolist() for k, v in args.items()}},
          open(sys.argv[1], "w"))
'''


def test_bucketing_module_matches_mxnet(mxnet_python, tmp_path):
    """A BucketingModule over two sequence lengths: the buckets share their
    parameters and optimizer states, as MXNet's do."""
    _run_script(BUCKETING_SCRIPT, str(tmp_path / "ours.json"))
    # MXNet trains too, then loads our checkpoint (symbols, params, .buckets file)
    run_mxnet(
        mxnet_python,
        "import mxnet as mx\n" + BUCKETING_SCRIPT,
        tmp_path,
        str(tmp_path / "theirs.json"),
        str(tmp_path / "ours"),
    )
    # and here MXNet's checkpoint loads
    _run_script(BUCKETING_SCRIPT, str(tmp_path / "again.json"), str(tmp_path / "theirs"))
    ours = json.loads((tmp_path / "ours.json").read_text())
    theirs = json.loads((tmp_path / "theirs.json").read_text())
    np.testing.assert_allclose(
        np.load(tmp_path / "theirs-other.npy"), ours["pred"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "again-other.npy"), theirs["pred"], rtol=1e-5, atol=1e-6
    )
    for key in (3, 5):
        assert (tmp_path / f"ours-{key}-symbol.json").exists()
    assert ours["buckets"] == theirs["buckets"] == [3, 5]
    log_ours, log_theirs = _parse_log(ours["log"]), _parse_log(theirs["log"])
    assert [k for k, _ in log_ours] == [k for k, _ in log_theirs]
    np.testing.assert_allclose(
        [v for _, v in log_ours], [v for _, v in log_theirs], rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(ours["pred"], theirs["pred"], rtol=1e-4, atol=1e-5)
    for name, value in ours["params"].items():
        np.testing.assert_allclose(
            value, theirs["params"][name], rtol=1e-4, atol=1e-5, err_msg=name
        )


CHECK_THEIRS = r"""
import json, sys
import mxnet as mx
import numpy as np
sym, args, auxs = mx.model.load_checkpoint(sys.argv[1], 2)
json.dump({"args": sym.list_arguments(), "aux": sorted(auxs),
           "values": {k: v.asnumpy().tolist() for k, v in args.items()}},
          open("loaded.json", "w"))
mx.model.save_checkpoint("mxsaved", 7, sym, args, auxs)
"""


def test_checkpoint_files_load_both_ways(runs, mxnet_python, tmp_path):
    here, there = runs
    # MXNet's do_checkpoint files (epoch 2 of 3) load here
    symbol, args, auxs = symgrad.model.load_checkpoint(str(there / "ck"), 2)
    assert symbol.list_arguments() == [
        "data",
        "fc1_weight",
        "fc1_bias",
        "fc2_weight",
        "fc2_bias",
        "softmax_label",
    ]
    assert sorted(args) == ["fc1_bias", "fc1_weight", "fc2_bias", "fc2_weight"]
    assert auxs == {}
    ours_sym, ours_args, _ = symgrad.model.load_checkpoint(str(here / "ck"), 2)
    for name, value in args.items():  # the same training: the same epoch-2 weights
        np.testing.assert_allclose(ours_args[name].asnumpy(), value.asnumpy(), rtol=1e-4, atol=1e-5)
    # ours load in MXNet, and what MXNet's save_checkpoint writes of them loads here
    run_mxnet(mxnet_python, CHECK_THEIRS, tmp_path, str(here / "ck"))
    loaded = json.loads((tmp_path / "loaded.json").read_text())
    assert loaded["args"] == ours_sym.list_arguments() and loaded["aux"] == []
    for name, value in loaded["values"].items():
        np.testing.assert_array_equal(np.array(value, np.float32), ours_args[name].asnumpy())
    again, again_args, _ = symgrad.model.load_checkpoint(str(tmp_path / "mxsaved"), 7)
    assert again.list_arguments() == ours_sym.list_arguments()
    assert again.list_outputs() == ours_sym.list_outputs() == ["softmax_output"]
    for name, value in again_args.items():
        np.testing.assert_array_equal(value.asnumpy(), ours_args[name].asnumpy())


RNN_EXPORT = r"""
import mxnet as mx
import numpy as np
mx.random.seed(3)


class Net(mx.gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.cell = mx.gluon.rnn.RNNCell(8, input_size=4)
            self.lstm = mx.gluon.rnn.LSTMCell(5, input_size=8)
            self.gru = mx.gluon.rnn.GRUCell(6, input_size=5)

    def hybrid_forward(self, F, x):
        out, _ = self.cell.unroll(3, x, layout="NTC", merge_outputs=True)
        out, _ = self.lstm.unroll(3, out, layout="NTC", merge_outputs=True)
        out, _ = self.gru.unroll(3, out, layout="NTC", merge_outputs=True)
        return out


net = Net()
net.initialize(mx.init.Uniform(0.5))
net.hybridize()
x = mx.nd.array(np.load("x.npy"))
np.save("y.npy", net(x).asnumpy())
net.export("rnn")
"""


def test_exported_rnn_cells_with_zero_sized_begin_states(mxnet_python, tmp_path):
    """The ``_zeros`` begin states (shape ``(0, 8)``) of RNN, LSTM and GRU cells
    take the batch size from the rest of the graph, as MXNet infers it."""
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run_mxnet(mxnet_python, RNN_EXPORT, tmp_path)
    graph = json.loads((tmp_path / "rnn-symbol.json").read_text())
    zero_shapes = [node["attrs"]["shape"] for node in graph["nodes"] if node["op"] == "_zeros"]
    assert {"(0, 8)", "(0, 5)", "(0, 6)"} <= set(zero_shapes)
    symbol, args, auxs = symgrad.model.load_checkpoint(str(tmp_path / "rnn"), 0)
    arg_shapes, out_shapes, _ = symbol.infer_shape(data=(2, 3, 4))
    assert out_shapes == [(2, 3, 6)]
    assert dict(zip(symbol.list_arguments(), arg_shapes))["data"] == (2, 3, 4)
    block = symgrad.gluon.SymbolBlock.imports(
        str(tmp_path / "rnn-symbol.json"), ["data"], str(tmp_path / "rnn-0000.params")
    )
    np.testing.assert_allclose(
        block(symgrad.nd.array(x)).asnumpy(), np.load(tmp_path / "y.npy"), rtol=1e-5, atol=1e-6
    )
    # and a Module runs the file too
    mod = symgrad.mod.Module(symbol, label_names=None)
    mod.bind(data_shapes=[("data", (2, 3, 4))], for_training=False)
    mod.set_params(args, auxs)
    mod.forward(symgrad.io.DataBatch([symgrad.nd.array(x)]))
    np.testing.assert_allclose(
        mod.get_outputs()[0].asnumpy(), np.load(tmp_path / "y.npy"), rtol=1e-5, atol=1e-6
    )
