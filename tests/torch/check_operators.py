#!/usr/bin/python3
"""Independent PyTorch rebuild of a livsearch model (issue 6, item 4).

Usage: check_operators.py DIR

DIR holds what tests/evaluator/test_torch_crosscheck.cpp wrote: case.json (the
resolved ModelSpec, tokens, livsearch's loss and auxiliary loss, the parameter
layout), values.f32 and grads.f32 (every parameter and its gradient of
cross-entropy + auxiliary loss, float32). This script rebuilds the model from
the operator equations (docs/architecture.md) in float64, computes the loss
with autograd and compares:
  - cross-entropy and auxiliary loss: relative error < 1e-5;
  - every parameter's gradient: ||g - g_torch|| / max(||g_torch||, 1e-4 * G)
    < 1e-4, G the largest gradient norm of any tensor.
Exit status 0 when everything agrees, 1 otherwise (with a report).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
LAMBDA_INIT = 0.8
GLA_TEMPERATURE = 16.0
MOE_AUX_WEIGHT = 0.01


def rmsnorm(x, gain, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


def linear(x, w):
    return x @ w.t()


def rope(x, theta):
    """Rotate-half RoPE on [B, T, H, hd]; the token at index t has position t."""
    T, hd = x.shape[1], x.shape[3]
    half = hd // 2
    inv = theta ** (-2.0 * torch.arange(half) / hd)
    angle = torch.arange(T)[:, None] * inv[None, :]
    c, s = torch.cos(angle)[None, :, None, :], torch.sin(angle)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


def heads(x, n):
    B, T, W = x.shape
    return x.reshape(B, T, n, W // n)


def softmax_attention(q, k, v, window):
    """Causal (sliding-window) attention; q [B,T,H,hd], k, v [B,T,KV,hd]."""
    B, T, H, hd = q.shape
    rep = H // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    t = torch.arange(T)[:, None]
    s = torch.arange(T)[None, :]
    allowed = s <= t
    if window > 0:
        allowed = allowed & (t - s < window)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhts,bshd->bthd", torch.softmax(scores, dim=-1), v)


def differential_mix(a1, a2, lam, eps, scale):
    """a1 - (0.8 + lambda_h) a2 per head, then RMS-normalised per head, times scale."""
    mixed = a1 - (LAMBDA_INIT + lam)[None, None, :, None] * a2
    return rmsnorm(mixed, torch.ones(()), eps) * scale


class Builder:
    def __init__(self, case, params):
        self.case = case
        self.p = params
        self.eps = case["norm_eps"]
        self.features = {}  # (slot, op) -> the features a sharer reads

    def w(self, op, name):
        return self.p[op["weights"][name]]

    # --- token mixers -------------------------------------------------
    def sa(self, op, x, where):
        k = op["sa"]
        H, KV, hd = k["heads"], k["kv_heads"], k["head_dim"]
        groups = 2 if op["differential"] else 1
        wq = self.w(op, "wq")

        def prepare(t, gain):
            if k["qk_norm"]:
                t = rmsnorm(t, gain, self.eps)
            if k["rope"]:
                t = rope(t, k["rope_theta"])
            return t

        conv = self.short_conv(op, k)
        qs = [prepare(heads(conv("q", linear(x, wq[g * H * hd:(g + 1) * H * hd]), g * H * hd), H),
                      self.w(op, "q_norm") if k["qk_norm"] else None) for g in range(groups)]
        if op["feature_source"] is None:
            wk = self.w(op, "wk")
            ks = [prepare(heads(conv("k", linear(x, wk[g * KV * hd:(g + 1) * KV * hd]), g * KV * hd), KV),
                          self.w(op, "k_norm") if k["qk_norm"] else None) for g in range(groups)]
            v = heads(conv("v", linear(x, self.w(op, "wv")), 0), KV)
            self.features[where] = (ks, v)
        else:
            ks, v = self.features[tuple(op["feature_source"])]
        att = [softmax_attention(qs[g], ks[g], v, k["window"]) for g in range(groups)]
        if groups == 2:
            out = differential_mix(att[0], att[1], self.w(op, "lambda"), self.eps, 1.0 - LAMBDA_INIT)
        else:
            out = att[0]
        B, T = x.shape[:2]
        out = out.reshape(B, T, H * hd)
        if k.get("output_gate"):  # gated attention: sigmoid(x W_g^T) multiplies the output before Wo
            out = out * torch.sigmoid(linear(x, self.w(op, "w_out_gate")))
        return linear(out, self.w(op, "wo"))

    def short_conv(self, op, k):
        """conv(name, t, first): the short convolution of projection name (q, k, v) on its channels
        [first, first + width) (a feature group), or the identity when short_conv is 0."""
        def conv(name, t, first):
            if not k.get("short_conv"):
                return t
            w = self.w(op, name + "_conv")
            return self.causal_conv(t, w[first:first + t.shape[-1]])
        return conv

    def linattn(self, op, x, where):
        k = op["linattn"]
        H, hd = k["heads"], k["head_dim"]
        groups = 2 if op["differential"] else 1
        phi = {"elu_plus_one": lambda t: F.elu(t) + 1.0, "relu": F.relu, "identity": lambda t: t}[k["feature_map"]]
        wq = self.w(op, "wq")
        conv = self.short_conv(op, k)
        qs = [phi(heads(conv("q", linear(x, wq[g * H * hd:(g + 1) * H * hd]), g * H * hd), H))
              for g in range(groups)]
        if op["feature_source"] is None:
            wk = self.w(op, "wk")
            ks = [phi(heads(conv("k", linear(x, wk[g * H * hd:(g + 1) * H * hd]), g * H * hd), H))
                  for g in range(groups)]
            v = heads(conv("v", linear(x, self.w(op, "wv")), 0), H)
            log_alpha = None
            if k["gated"]:
                z = linear(x, self.w(op, "w_gate")) + self.w(op, "gate_bias")
                log_alpha = heads(F.logsigmoid(z) / GLA_TEMPERATURE, H)
            self.features[where] = (ks, v, log_alpha)
        else:
            ks, v, log_alpha = self.features[tuple(op["feature_source"])]
        B, T = x.shape[:2]
        outs = []
        for g in range(groups):
            state = torch.zeros(B, H, hd, hd)
            rows = []
            for t in range(T):
                if log_alpha is not None:
                    state = torch.exp(log_alpha[:, t])[..., None] * state
                state = state + ks[g][:, t, :, :, None] * v[:, t, :, None, :]
                rows.append(torch.einsum("bhi,bhij->bhj", qs[g][:, t], state))
            outs.append(torch.stack(rows, dim=1))
        scale = 1.0 / math.sqrt(hd)
        if groups == 2:
            out = differential_mix(outs[0], outs[1], self.w(op, "lambda"), self.eps, (1.0 - LAMBDA_INIT) * scale)
        else:
            out = rmsnorm(outs[0], torch.ones(()), self.eps) * scale
        return linear(out.reshape(B, T, H * hd), self.w(op, "wo"))

    # --- convolutions and scans (rec, ssm, gconv) --------------------------
    @staticmethod
    def causal_conv(x, w, bias=None):
        """Depthwise causal conv: y[t, c] = bias[c] + sum_j w[c, j] x[t - (k-1) + j, c]."""
        k = w.shape[1]
        padded = F.pad(x, (0, 0, k - 1, 0))
        T = x.shape[1]
        y = sum(w[:, j] * padded[:, j:j + T] for j in range(k))
        return y + bias if bias is not None else y

    @staticmethod
    def halves_difference(t, diff_lambda):
        """The differential form of rec/ssm/gconv: first half - (0.8 + diff_lambda) * second half."""
        half = t.shape[-1] // 2
        return t[..., :half] - (LAMBDA_INIT + diff_lambda) * t[..., half:]

    def rec(self, op, x, where):
        # Griffin: u = conv(x W_x^T) + b; r = sigmoid(u W_a^T + b_a), i = sigmoid(u W_i^T + b_i);
        # log a = -8 r softplus(lambda); h_t = a h_{t-1} + sqrt(1 - a^2) (i u); y = (gelu(x W_y^T) * h) W_out^T.
        u = self.causal_conv(linear(x, self.w(op, "w_x")), self.w(op, "conv"), self.w(op, "conv_bias"))
        r = torch.sigmoid(linear(u, self.w(op, "w_a")) + self.w(op, "b_a"))
        i = torch.sigmoid(linear(u, self.w(op, "w_i")) + self.w(op, "b_i"))
        log_a = -8.0 * r * F.softplus(self.w(op, "lambda"))
        a = torch.exp(log_a)
        gated = torch.sqrt(-torch.expm1(2.0 * log_a)) * (i * u)
        h = torch.zeros_like(u[:, 0])
        hs = []
        for t in range(u.shape[1]):
            h = a[:, t] * h + gated[:, t]
            hs.append(h)
        h = torch.stack(hs, dim=1)
        if op["differential"]:
            h = self.halves_difference(h, self.w(op, "diff_lambda"))
        gate = F.gelu(linear(x, self.w(op, "w_y")), approximate="tanh")
        return linear(gate * h, self.w(op, "w_out"))

    def ssm(self, op, x, where):
        # Mamba: [x; z] = in_proj; u = silu(conv(x) + b); [dt; B; C] = u x_proj^T;
        # delta = softplus(dt dt_proj^T + dt_bias); h_t = exp(delta A) h + delta B u, A = -exp(a_log);
        # y = C h + d u; out = (y * silu(z)) out_proj^T.
        k = op["ssm"]
        if k.get("form") == "mamba2":
            return self.ssd(op, x, where)
        di, n, r = k["d_inner"], k["d_state"], k["dt_rank"]
        ii = (2 if op["differential"] else 1) * di
        in_proj = self.w(op, "in_proj")
        xr, z = linear(x, in_proj[:ii]), linear(x, in_proj[ii:])
        u = F.silu(self.causal_conv(xr, self.w(op, "conv"), self.w(op, "conv_bias")))
        x_proj = self.w(op, "x_proj")
        draw, B, C = linear(u, x_proj[:r]), linear(u, x_proj[r:r + n]), linear(u, x_proj[r + n:])
        delta = F.softplus(linear(draw, self.w(op, "dt_proj")) + self.w(op, "dt_bias"))
        A = -torch.exp(self.w(op, "a_log"))
        h = torch.zeros(x.shape[0], ii, n)
        ys = []
        for t in range(x.shape[1]):
            h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]
            ys.append((h * C[:, t, None, :]).sum(-1) + self.w(op, "d") * u[:, t])
        y = torch.stack(ys, dim=1)
        if op["differential"]:
            y = self.halves_difference(y, self.w(op, "diff_lambda"))
        return linear(y * F.silu(z), self.w(op, "out_proj"))

    def ssd(self, op, x, where):
        # Mamba-2 (Dao and Gu, 2024): [z; xBC; dt] = in_proj; [x; B; C] = silu(conv(xBC) + b);
        # dt = softplus(dt + dt_bias) per head; H_t = exp(dt A_h) H + dt x_t B_t^T, A_h = -exp(a_log[h]);
        # y = H C + d[h] x; out = (rmsnorm(y * silu(z)) * norm) out_proj^T. B and C shared by the heads.
        k = op["ssm"]
        di, n, p = k["d_inner"], k["d_state"], k["head_dim"]
        ii = (2 if op["differential"] else 1) * di
        heads = ii // p
        in_proj = self.w(op, "in_proj")
        z = linear(x, in_proj[:di])
        xbc = F.silu(self.causal_conv(linear(x, in_proj[di:di + ii + 2 * n]), self.w(op, "conv"),
                                      self.w(op, "conv_bias")))
        dt = F.softplus(linear(x, in_proj[di + ii + 2 * n:]) + self.w(op, "dt_bias"))
        xs = xbc[..., :ii].reshape(x.shape[0], x.shape[1], heads, p)
        B, C = xbc[..., ii:ii + n], xbc[..., ii + n:]
        A = -torch.exp(self.w(op, "a_log"))
        H = torch.zeros(x.shape[0], heads, p, n)
        ys = []
        for t in range(x.shape[1]):
            decay = torch.exp(dt[:, t] * A)[:, :, None, None]
            H = decay * H + (dt[:, t, :, None] * xs[:, t])[..., None] * B[:, t, None, None, :]
            ys.append((H * C[:, t, None, None, :]).sum(-1) + self.w(op, "d")[:, None] * xs[:, t])
        y = torch.stack(ys, dim=1).reshape(x.shape[0], x.shape[1], ii)
        if op["differential"]:
            y = self.halves_difference(y, self.w(op, "diff_lambda"))
        return linear(rmsnorm(y * F.silu(z), self.w(op, "norm"), self.eps), self.w(op, "out_proj"))

    def gconv(self, op, x, where):
        # LFM2: [B; C; x~] = x w_in^T; y = (C * conv(B * x~)) w_out^T (no bias, no activation).
        w_in = self.w(op, "w_in")
        ci = w_in.shape[0] // 3
        B, C, xt = linear(x, w_in[:ci]), linear(x, w_in[ci:2 * ci]), linear(x, w_in[2 * ci:])
        m = C * self.causal_conv(B * xt, self.w(op, "conv"))
        if op["differential"]:
            m = self.halves_difference(m, self.w(op, "diff_lambda"))
        return linear(m, self.w(op, "w_out"))

    # --- channel mixers -------------------------------------------------
    def swiglu(self, op, x, where):
        h = F.silu(linear(x, self.w(op, "w_gate"))) * linear(x, self.w(op, "w_up"))
        return linear(h, self.w(op, "w_down"))

    def moe(self, op, x, where):
        k = op["moe"]
        E, top_k = k["experts"], k["top_k"]
        B, T, D = x.shape
        flat = x.reshape(B * T, D)
        probs = torch.softmax(linear(flat, self.w(op, "router")), dim=-1)
        # Top-k by probability, ties to the lower index (a stable sort of -p).
        order = np.argsort(-probs.detach().numpy(), axis=-1, kind="stable")[:, :top_k]
        index = torch.from_numpy(order.copy())
        chosen = probs.gather(1, index)
        weight = chosen / chosen.sum(-1, keepdim=True)
        wg, wu, wd = self.w(op, "w_gate"), self.w(op, "w_up"), self.w(op, "w_down")
        out = torch.zeros_like(flat)
        for n in range(B * T):
            for j in range(top_k):
                e = int(index[n, j])
                h = F.silu(wg[e] @ flat[n]) * (wu[e] @ flat[n])
                out[n] = out[n] + weight[n, j] * (wd[e] @ h)
        counts = torch.bincount(index.reshape(-1), minlength=E).to(torch.float64)
        f = counts / (B * T * top_k)  # held constant, as in Switch
        self.aux = self.aux + MOE_AUX_WEIGHT * E * (f * probs.mean(0)).sum()
        return out.reshape(B, T, D)

    def deltanet(self, op, x, where):
        """Gated DeltaNet in the paper's matrix form, S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) +
        beta_t v_t k_t^T, o_t = S_t q_t (S: d_v x d_k), one token at a time."""
        k = op["deltanet"]
        H, hd = k["heads"], k["head_dim"]
        B, T = x.shape[:2]

        def branch(name, conv):
            t = linear(x, self.w(op, name))
            if k["short_conv"]:
                t = self.causal_conv(t, self.w(op, conv))
            return heads(F.silu(t), H)  # [B, T, H, hd]

        def l2(t):  # livsearch's l2 norm: t / sqrt(|t|^2 + hd eps)
            return t / torch.sqrt((t * t).sum(-1, keepdim=True) + hd * self.eps)

        q = l2(branch("wq", "q_conv")) / math.sqrt(hd)
        kk = l2(branch("wk", "k_conv"))
        v = branch("wv", "v_conv")
        beta = torch.sigmoid(linear(x, self.w(op, "w_beta")))  # [B, T, H]
        if k["gated"]:
            z = linear(x, self.w(op, "w_alpha")) + self.w(op, "dt_bias")
            alpha = torch.exp(-torch.exp(self.w(op, "a_log")) * F.softplus(z))
        else:
            alpha = torch.ones_like(beta)
        eye = torch.eye(hd)
        S = torch.zeros(B, H, hd, hd)
        rows = []
        for t in range(T):
            kt, vt, bt, at = kk[:, t], v[:, t], beta[:, t, :, None, None], alpha[:, t, :, None, None]
            outer_kk = kt[..., :, None] * kt[..., None, :]
            S = at * S @ (eye - bt * outer_kk) + bt * vt[..., :, None] * kt[..., None, :]
            rows.append((S @ q[:, t, ..., None])[..., 0])
        o = torch.stack(rows, dim=1)  # [B, T, H, hd]
        o = rmsnorm(o, self.w(op, "o_norm"), self.eps)
        o = o.reshape(B, T, H * hd) * F.silu(linear(x, self.w(op, "w_out_gate")))
        return linear(o, self.w(op, "wo"))

    def op(self, op, x, where):
        cls = op["class"]
        if not hasattr(self, cls):
            raise NotImplementedError("no PyTorch rebuild for class " + cls)
        return getattr(self, cls)(op, x, where)

    # --- the model -----------------------------------------------------
    def loss(self):
        c = self.case
        B, T = c["batch"], c["seq"]
        tokens = torch.tensor(c["inputs"]).reshape(B, T)
        targets = torch.tensor(c["targets"]).reshape(B * T)
        emb = self.p["embedding"]
        x = emb[tokens]
        self.aux = torch.zeros(())
        for s, slot in enumerate(c["slots"]):
            h = rmsnorm(x, self.p["slot%d.norm" % s], self.eps)
            ys = [self.op(op, h, (s, i)) for i, op in enumerate(slot["ops"])]
            fusion = slot["fusion"]
            if fusion == "none":
                y = ys[0]
            elif fusion == "sum":
                y = ys[0] + ys[1]
            elif fusion == "mean":
                y = 0.5 * (ys[0] + ys[1])
            else:
                gate = torch.sigmoid(self.p["slot%d.gate" % s])
                y = gate * ys[0] + (1.0 - gate) * ys[1]
            x = x + y
        final = rmsnorm(x, self.p["final_norm"], self.eps)
        logits = final.reshape(B * T, -1) @ emb.t()
        ce = F.cross_entropy(logits, targets)
        return ce, self.aux


def main(folder):
    with open(os.path.join(folder, "case.json")) as f:
        case = json.load(f)
    values = np.fromfile(os.path.join(folder, "values.f32"), dtype=np.float32)
    grads = np.fromfile(os.path.join(folder, "grads.f32"), dtype=np.float32)
    params, ours = {}, {}
    for entry in case["parameters"]:
        n = int(np.prod(entry["shape"]))
        o = entry["offset"]
        params[entry["name"]] = torch.tensor(values[o:o + n].astype(np.float64)).reshape(entry["shape"]).requires_grad_()
        ours[entry["name"]] = torch.tensor(grads[o:o + n].astype(np.float64)).reshape(entry["shape"])
    ce, aux = Builder(case, params).loss()
    (ce + aux).backward()

    failures = []

    def relative(a, b):
        return abs(a - b) / max(abs(b), 1e-12)

    if relative(case["loss"], ce.item()) > 1e-5:
        failures.append("cross-entropy: livsearch %.9g, torch %.9g" % (case["loss"], ce.item()))
    if relative(case["aux_loss"], aux.item()) > 1e-5 and abs(case["aux_loss"] - aux.item()) > 1e-9:
        failures.append("auxiliary loss: livsearch %.9g, torch %.9g" % (case["aux_loss"], aux.item()))
    largest = max(float(p.grad.norm()) if p.grad is not None else 0.0 for p in params.values())
    worst = 0.0
    for name, p in params.items():
        reference = p.grad if p.grad is not None else torch.zeros_like(p)
        error = float((ours[name] - reference).norm()) / max(float(reference.norm()), 1e-4 * largest, 1e-30)
        worst = max(worst, error)
        if error > 1e-4:
            failures.append("gradient of %s: relative error %.3g (norm livsearch %.6g, torch %.6g)"
                            % (name, error, float(ours[name].norm()), float(reference.norm())))
    print("%s: cross-entropy %.9g (torch %.9g), aux %.6g (torch %.6g), worst gradient relative error %.3g"
          % (case["name"], case["loss"], ce.item(), case["aux_loss"], aux.item(), worst))
    for f in failures:
        print("MISMATCH " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
