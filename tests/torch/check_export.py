#!/usr/bin/python3
"""Checks livsearch's PyTorch exports against livsearch itself (issue 16, item 3).

Usage: check_export.py MANIFEST.json

MANIFEST lists, per architecture, "exported" (a folder `livsearch export
--format pytorch --weights` wrote) and "saved" (the `livsearch eval --save`
seed folder the weights came from: probe.safetensors, metrics.json). For each,
in float32 on the CPU, with only the exported model.py:
  - logits: Model.from_pretrained(folder)(probe tokens) against livsearch's
    probe logits, max |difference| <= 1e-4, through both of model.py's
    attention paths (F.scaled_dot_product_attention on torch >= 2.0, the
    plain softmax before it): the one this torch does not take is forced
    (on torch 1.x with a stand-in that follows SDPA's documented semantics);
  - validation loss: the mean cross-entropy over the config's validation
    windows (the first eval_tokens of the validation split, non-overlapping
    windows of seq_len + 1 tokens) against livsearch's validation_loss,
    |difference| <= 1e-4;
  - decode: step() token by token over the probe tokens against the forward,
    max |difference| <= 1e-4;
  - save_pretrained and from_pretrained give the same logits back;
  - the parallel forms model.py trains with (linear_scan, chunked linear
    attention, chunked SSD) equal plain loops over time in float64, values and gradients
    (relative error <= 1e-9);
  - 50 AdamW steps in PyTorch (m.loss, the objective livsearch trains) lower
    the loss on the first validation windows.
Exit status 0 when every architecture passes, 1 otherwise.
"""
import contextlib
import importlib.util
import json
import math
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

PARALLEL_TOLERANCE = 1e-9
LOGIT_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-4
TRAIN_STEPS = 50


def reference_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False):
    """F.scaled_dot_product_attention as torch 2.x documents it (a boolean mask: True takes part)."""
    bias = torch.zeros(query.shape[-2], key.shape[-2], dtype=query.dtype)
    if is_causal:
        bias.masked_fill_(~torch.ones_like(bias, dtype=torch.bool).tril(), float("-inf"))
    if attn_mask is not None:
        bias.masked_fill_(~attn_mask, float("-inf"))
    weights = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]) + bias
    return torch.softmax(weights, dim=-1) @ value


@contextlib.contextmanager
def other_attention_path():
    """Makes model.py take the attention path this torch would not."""
    native = getattr(F, "scaled_dot_product_attention", None)
    if native is None:
        F.scaled_dot_product_attention = reference_sdpa
    else:
        del F.scaled_dot_product_attention
    try:
        yield
    finally:
        if native is None:
            del F.scaled_dot_product_attention
        else:
            F.scaled_dot_product_attention = native


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def against_loop(parallel, loop, inputs, generator):
    """Largest relative error of the values and of every input's gradient (of a random projection)."""
    inputs = [t.detach().requires_grad_() for t in inputs]
    ours, theirs = parallel(*inputs), loop(*inputs)
    weights = torch.randn(ours.shape, generator=generator, dtype=torch.float64)
    grads_ours = torch.autograd.grad((ours * weights).sum(), inputs)
    grads_theirs = torch.autograd.grad((theirs * weights).sum(), inputs)
    return max([relative_error(ours, theirs)] + [relative_error(a, b) for a, b in zip(grads_ours, grads_theirs)])


def scan_loop(a, b):
    h, out = torch.zeros_like(b[:, 0]), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def linear_attention_loop(q, k, v, log_alpha):
    state, out = torch.zeros(q.shape[:2] + (q.shape[-1], v.shape[-1]), dtype=q.dtype), []
    for t in range(q.shape[2]):
        state = log_alpha[:, :, t].exp()[..., None] * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        out.append((q[:, :, t, None, :] @ state)[:, :, 0])
    return torch.stack(out, dim=2)


def ssd_loop(x, dt, A, B, C):
    H, out = torch.zeros(x.shape[0], x.shape[2], x.shape[3], B.shape[-1], dtype=x.dtype), []
    for t in range(x.shape[1]):
        H = torch.exp(dt[:, t] * A)[..., None, None] * H + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None]
        out.append((H * C[:, t, None, None]).sum(-1))
    return torch.stack(out, dim=1)

def delta_rule_loop(q, k, v, log_alpha, beta):
    """The paper's form: S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T, o_t = S_t q_t."""
    S, out = torch.zeros(q.shape[:2] + (v.shape[-1], q.shape[-1]), dtype=q.dtype), []
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    for t in range(q.shape[2]):
        kt, b = k[:, :, t], beta[:, :, t, None, None]
        S = log_alpha[:, :, t, None, None].exp() * S @ (eye - b * kt[..., :, None] * kt[..., None, :])
        S = S + b * v[:, :, t, :, None] * kt[..., None, :]
        out.append((S @ q[:, :, t, :, None])[..., 0])
    return torch.stack(out, dim=2)


def parallel_forms_error(module):
    """model.py's parallel forms against loops over time, float64 (37 steps: partial chunks)."""
    generator = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)
    randn = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    worst = 0.0
    if hasattr(module, "linear_scan"):
        worst = against_loop(module.linear_scan, scan_loop, (rand(2, 37, 3, 4), randn(2, 37, 3, 4)), generator)
    if hasattr(module, "chunked_linear_attention"):
        inputs = (randn(2, 3, 37, 5), randn(2, 3, 37, 5), randn(2, 3, 37, 6), F.logsigmoid(randn(2, 3, 37, 5)))
        worst = max(worst, against_loop(module.chunked_linear_attention, linear_attention_loop, inputs, generator))
    if hasattr(module, "chunked_ssd"):  # chunks of 8 over 37 steps: the inter-chunk scan and a partial chunk
        inputs = (randn(2, 37, 3, 4), rand(2, 37, 3) * 0.5, -rand(3) * 4, randn(2, 37, 5), randn(2, 37, 5))
        chunked = lambda *a: module.chunked_ssd(*a, chunk=8)
        worst = max(worst, against_loop(chunked, ssd_loop, inputs, generator))

    if hasattr(module, "chunked_delta_rule"):
        k = F.normalize(randn(2, 3, 37, 5), dim=-1)
        inputs = (randn(2, 3, 37, 5), k, randn(2, 3, 37, 6), F.logsigmoid(randn(2, 3, 37)), rand(2, 3, 37))
        chunked = lambda *args: module.chunked_delta_rule(*args)[0]
        worst = max(worst, against_loop(chunked, delta_rule_loop, inputs, generator))
    return worst


def load_module(folder, index):
    path = os.path.join(folder, "model.py")
    spec = importlib.util.spec_from_file_location("exported_model_%d" % index, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def splits(settings):
    """The training and validation tokens as livsearch splits text data (evaluator/data/dataset.cpp)."""
    data = settings["data"]
    if data["format"] != "text" or "validation_path" in data:
        raise SystemExit("check_export.py reads text data split by validation_fraction only")
    paths = data["path"] if isinstance(data["path"], list) else [data["path"]]
    tokens = b"".join(open(path, "rb").read() for path in paths)
    held_out = int(math.floor(data["validation_fraction"] * len(tokens) + 0.5))
    held_out = min(max(held_out, 1), len(tokens) - 1)
    as_tensor = lambda b: torch.tensor(list(b), dtype=torch.long)
    return as_tensor(tokens[:-held_out]), as_tensor(tokens[-held_out:])


def validation_windows(validation, seq_len, eval_tokens):
    available = min(eval_tokens, len(validation))
    windows = (available - 1) // seq_len
    inputs = torch.stack([validation[w * seq_len:(w + 1) * seq_len] for w in range(windows)])
    targets = torch.stack([validation[w * seq_len + 1:(w + 1) * seq_len + 1] for w in range(windows)])
    return inputs, targets


def mean_cross_entropy(model, inputs, targets, batch=16):
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            logits = model(inputs[i:i + batch])
            expected = targets[i:i + batch].reshape(-1)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), expected, reduction="sum"))
            count += targets[i:i + batch].numel()
    return total / count


def check(entry, index):
    start = time.time()
    module = load_module(entry["exported"], index)
    model = module.Model.from_pretrained(entry["exported"])
    model.eval()
    probe = module.read_safetensors(os.path.join(entry["saved"], "probe.safetensors"))
    with open(os.path.join(entry["saved"], "metrics.json")) as f:
        record = json.load(f)
    settings, training = record["settings"], record["settings"]["training"]
    tokens = probe["tokens"].long()
    failures = []
    parallel_error = parallel_forms_error(module)
    if not parallel_error <= PARALLEL_TOLERANCE:
        failures.append("parallel forms differ from loops over time by %.3g (relative)" % parallel_error)

    with torch.no_grad():
        logits = model(tokens)
        logit_error = float((logits - probe["logits"]).abs().max())
        with other_attention_path():
            logit_error = max(logit_error, float((model(tokens) - probe["logits"]).abs().max()))
        state, steps = None, []
        for t in range(tokens.shape[1]):
            step_logits, state = model.step(tokens[:, t], state)
            steps.append(step_logits)
        step_error = float((torch.stack(steps, dim=1) - logits).abs().max())
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            reloaded = module.Model.from_pretrained(folder)
            roundtrip_error = float((reloaded(tokens) - logits).abs().max())

    train, validation = splits(settings)
    inputs, targets = validation_windows(validation, training["seq_len"], training["eval_tokens"])
    loss_ours = mean_cross_entropy(model, inputs, targets)
    loss_error = abs(loss_ours - record["metrics"]["validation_loss"])

    # Further training in PyTorch: the loss on the first validation windows must fall.
    model.train()
    held_in, held_out = inputs[:8], targets[:8]
    with torch.no_grad():
        before = float(model.loss(held_in, held_out))
    optimizer = torch.optim.AdamW(model.optimizer_groups(0.1), lr=3e-3, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(index)
    seq = training["seq_len"]
    for _ in range(TRAIN_STEPS):
        starts = torch.randint(0, len(train) - seq - 1, (8,), generator=generator)
        batch = torch.stack([train[s:s + seq + 1] for s in starts.tolist()])
        loss = model.loss(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    with torch.no_grad():
        after = float(model.loss(held_in, held_out))

    if not logit_error <= LOGIT_TOLERANCE:
        failures.append("logits differ from livsearch's by %.3g" % logit_error)
    if not loss_error <= LOSS_TOLERANCE:
        reported = record["metrics"]["validation_loss"]
        failures.append("validation loss %.6f, livsearch %.6f" % (loss_ours, reported))
    if not step_error <= LOGIT_TOLERANCE:
        failures.append("step() differs from the forward by %.3g" % step_error)
    if roundtrip_error != 0.0:
        failures.append("save_pretrained/from_pretrained changed the logits by %.3g" % roundtrip_error)
    if not after < before:
        failures.append("%d PyTorch steps did not lower the loss (%.4f -> %.4f)" %
                        (TRAIN_STEPS, before, after))
    row = (entry["name"], logit_error, loss_error, step_error, before, after, time.time() - start)
    return row, failures


def main(manifest_path):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    with open(manifest_path) as f:
        manifest = json.load(f)
    print("torch %s; tolerances: logits and step() %.0e, validation loss %.0e" %
          (torch.__version__, LOGIT_TOLERANCE, LOSS_TOLERANCE))
    print("%-28s %10s %10s %10s %17s %6s" % ("architecture", "|dlogits|", "|dloss|", "|dstep|",
                                             "loss 50 steps", "s"))
    failed = 0
    for index, entry in enumerate(manifest):
        try:
            row, failures = check(entry, index)
        except Exception as e:  # a crash in one export is that export's failure
            row, failures = (entry["name"], math.nan, math.nan, math.nan, math.nan, math.nan, 0.0), [repr(e)]
        name = os.path.basename(row[0]) if row[0].endswith(".json") else row[0]
        print("%-28s %10.2e %10.2e %10.2e %8.4f->%7.4f %6.1f" % ((name,) + row[1:]))
        for f in failures:
            print("  FAIL %s (%s): %s" % (row[0], entry["summary"], f))
        failed += bool(failures)
    print("%d of %d architectures agree" % (len(manifest) - failed, len(manifest)))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
