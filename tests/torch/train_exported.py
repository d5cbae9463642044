#!/usr/bin/env python3
"""Trains exported livsearch models further in PyTorch (issue 16: an exported
winner keeps learning on a GPU under bf16 autocast).

Usage: train_exported.py CORPUS FOLDER... [--device cuda] [--steps 200]

Each FOLDER is what `livsearch export --format pytorch --weights` wrote (with
model.safetensors). The model is loaded with Model.from_pretrained, moved to
the device and trained with AdamW (livsearch's parameter groups, a short
linear warm-up, then a constant learning rate) and bf16 autocast on random
windows of CORPUS (bytes, as livsearch's byte-level configs read them). The
loss on fixed held-out windows (the last 10% of the corpus) is printed before
and after; the exit status is 1 when it did not go down for some folder.
Only the exported model.py is used.
"""
import argparse
import importlib.util
import math
import os
import sys

import torch


def load_model_class(folder):
    spec = importlib.util.spec_from_file_location("exported_model_" + str(abs(hash(folder))),
                                                  os.path.join(folder, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model


def held_out_loss(model, tokens, seq, batch, device, autocast):
    windows = (len(tokens) - 1) // seq
    total, count = 0.0, 0
    with torch.no_grad(), autocast:
        for w0 in range(0, min(windows, 8 * batch), batch):
            rows = [tokens[w * seq:w * seq + seq + 1] for w in range(w0, min(w0 + batch, windows))]
            block = torch.stack(rows).to(device)
            total += model.loss(block[:, :-1], block[:, 1:]).item() * len(rows)
            count += len(rows)
    return total / count


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus")
    p.add_argument("folders", nargs="+")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    # livsearch's schedule ends at 10% of its peak (3e-3 in the shipped configs): continuing at that
    # rate keeps learning; a fresh AdamW at 1e-3 first raised the held-out loss of lfm2 and
    # striped-mamba trained by configs/quick.json (1.338 -> 1.356 and 1.325 -> 1.329 over 200 steps).
    p.add_argument("--lr", type=float, default=3e-4)
    a = p.parse_args()
    device = torch.device(a.device)
    data = torch.tensor(list(open(a.corpus, "rb").read()), dtype=torch.long)
    cut = int(len(data) * 0.9)
    train, held_out = data[:cut], data[cut:]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(1)
    failures = 0
    for folder in a.folders:
        model = load_model_class(folder).from_pretrained(folder).to(device)
        opt = torch.optim.AdamW(model.optimizer_groups(0.1), lr=a.lr, betas=(0.9, 0.95))
        before = held_out_loss(model, held_out, a.seq, a.batch, device, autocast)
        warmup = max(1, a.steps // 10)
        for step in range(1, a.steps + 1):
            for g in opt.param_groups:
                g["lr"] = a.lr * min(1.0, step / warmup)
            starts = torch.randint(0, len(train) - a.seq - 1, (a.batch,), generator=gen)
            block = torch.stack([train[s:s + a.seq + 1] for s in starts.tolist()]).to(device)
            with autocast:
                loss = model.loss(block[:, :-1], block[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if not math.isfinite(loss.item()):
                break
        after = held_out_loss(model, held_out, a.seq, a.batch, device, autocast)
        ok = math.isfinite(after) and after < before
        failures += not ok
        print("%s %s: held-out loss %.4f -> %.4f after %d steps (%s, bf16 autocast, torch %s)" % (
            "ok  " if ok else "FAIL", os.path.basename(folder.rstrip("/")), before, after, a.steps, device,
            torch.__version__), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
