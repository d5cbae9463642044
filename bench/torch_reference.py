#!/usr/bin/env python3
"""PyTorch reference for bench_train (issue 7, item 6).

The presets of genome/presets.cpp written plainly in PyTorch, with the
equations of the evaluator's operators (evaluator/op_*.cpp,
docs/architecture.md "Weights per class"), trained with bf16 autocast and fused
AdamW, eager or under torch.compile, on the same shapes, steps and timing
protocol as bench/bench_train.cpp:

  - each row is its own process (--row), so the whole-candidate time runs from
    process start (read from /proc/self/stat) to the perplexity: interpreter
    start, `import torch`, CUDA start-up, building the model, torch.compile's
    warm-up, `steps` training steps and the validation pass;
  - every step is timed after a device synchronisation (the loss is read on
    the host each step, as livsearch's trainer does to stop on a non-finite
    loss); ms/step is the median over the steps after `warmup`;
  - MFU uses the same FLOPs per token as bench_train:
    6 * (N_non_embedding + V * d) + 12 * sum over attention layers of
    min(T, window) * heads * head_dim, over 989 TFLOP/s (H100 dense bf16).
  - Synthetic uniform tokens; vocabulary 256 (byte-level) or 50304 for the MFU row.

Recurrences and scans are never a per-token Python loop:
  - RG-LRU (rec) and the selective scan (ssm) are diagonal linear recurrences
    h_t = a_t * h_{t-1} + x_t, computed with a log-depth (Hillis-Steele)
    parallel scan over time in float32; decays are combined as sums of
    log a <= 0, so every factor is exp(<= 0) and nothing overflows;
  - Mamba-2's SSD (the mamba2-hybrid preset) is its chunked matrix form
    (Dao and Gu, 2024): inside chunks of 64 steps the masked product
    (C B^T * decays) (dt x) as einsums, across chunks a short loop over the
    chunk states (T / 64 steps), all in float32;
  - linear attention (ungated, as the linear-transformer preset) is chunked:
    causal (q k^T) v inside each chunk plus q times the prefix sum of the
    earlier chunks' k^T v states (no exponentials at all);
  - gated convolutions use a depthwise F.conv1d with causal padding;
  - softmax attention uses F.scaled_dot_product_attention (flash / memory-
    efficient kernels), a banded mask only when the window is shorter than T.

  torch_reference.py --mode eager,compile [--presets a,b] [--d-models 128,512]

--mode reduce-overhead is torch.compile with CUDA graphs (the step's forward
and backward replayed as graphs; the fused AdamW step and the one host read
of the loss stay outside, as in the other modes), the strongest PyTorch mode
for small models; max-autotune-no-cudagraphs also searches Triton GEMM
configurations (slow to compile).

--precompile N first runs every compile row for two steps in N processes at
once, which fills torch.compile's on-disk caches (FX graph and Triton kernels)
so that the timed rows, run one at a time afterwards, spend little time
compiling. Per-step times do not change; whole-candidate times then favour
PyTorch (a warm cache), and each such row's JSON says "cache": "warm".

  torch_reference.py --mode compile --precompile 8 --row-timeout 400
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

PEAK_FLOPS = 989e12
# --mode names and the torch.compile mode each runs ("eager" runs the module as it is).
COMPILE_MODES = {"compile": "default", "reduce-overhead": "reduce-overhead",
                 "max-autotune-no-cudagraphs": "max-autotune-no-cudagraphs"}
PRESETS = ["transformer", "griffin", "striped-mamba", "lfm2", "linear-transformer", "hyena-like", "mamba2-hybrid",
           "gated-deltanet-hybrid"]


def seconds_since_process_start():
    with open("/proc/self/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    start_ticks = float(fields[19])  # field 22 of the whole line
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def scaled_width(factor, d):
    return max(8, int(round(factor * d / 8.0)) * 8)


def layer_plan(name, d, layers):
    """The token mixer of each layer, as genome/presets.cpp: (class, knobs)."""
    heads = max(1, d // 32)

    def attention(window, kv_divisor):
        return ("sa", dict(heads=heads, kv_heads=max(1, heads // kv_divisor), window=window))

    plan = []
    for i in range(layers):
        if name == "transformer":
            m = attention(0, 1)
        elif name == "griffin":
            m = attention(128, 1 << 30) if i % 3 == 2 else ("rec", dict(width=scaled_width(4 / 3, d), kernel=4))
        elif name == "striped-mamba":
            m = attention(0, 1) if i % 4 == 3 else ("ssm", dict(expand=2, d_state=16, kernel=4))
        elif name == "lfm2":
            m = attention(0, 2) if i % 3 == 2 else ("gconv", dict(kernel=3))
        elif name == "linear-transformer":
            m = ("linattn", dict(heads=heads, short_conv=4))
        elif name == "hyena-like":
            m = ("gconv", dict(kernel=64))
        elif name == "mamba2-hybrid":
            d_inner = 2 * d
            head_dim = 64 if d_inner % 64 == 0 else 32 if d_inner % 32 == 0 else 16
            m = attention(0, 1) if i % 4 == 3 else ("ssd", dict(expand=2, d_state=64, kernel=4, head_dim=head_dim))
        elif name == "gated-deltanet-hybrid":  # 3 Gated DeltaNet : 1 gated attention (Qwen3-Next)
            if i % 4 == 3:
                m = attention(0, 1)
                m[1]["output_gate"] = True
            else:
                m = ("deltanet", dict(heads=heads, short_conv=4))
        else:
            raise SystemExit("unknown preset " + name)
        plan.append(m)
    hidden = scaled_width(3.0 if name == "griffin" else 8 / 3, d)
    return plan, hidden


def flops_per_token(plan, d, vocab, seq, params_non_embedding):
    flops = 6.0 * (params_non_embedding + vocab * d)
    for cls, k in plan:
        if cls == "sa":
            keys = min(seq, k["window"]) if k["window"] > 0 else seq
            flops += 12.0 * keys * k["heads"] * (d // k["heads"])
        if cls == "deltanet":  # the recurrence: 7 FLOPs per state element (as proxies/analytic), x3 for training
            flops += 3.0 * 7.0 * k["heads"] * (d // k["heads"]) ** 2
    return flops


def build(torch, plan, hidden, d, vocab, seq):
    nn, F = torch.nn, torch.nn.functional

    def normal(*shape):
        return nn.Parameter(torch.randn(*shape) * 0.02)

    def uniform(bound, *shape):
        return nn.Parameter((torch.rand(*shape) * 2 - 1) * bound)

    def rmsnorm(x, gain, eps=1e-5):
        if hasattr(F, "rms_norm"):
            return F.rms_norm(x, (x.shape[-1],), gain, eps)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        return x if gain is None else x * gain

    def causal_conv(x, w, bias=None):
        """Depthwise causal conv over time; x [B, T, C], w [C, k]."""
        k = w.shape[1]
        y = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), w.unsqueeze(1).to(x.dtype),
                     None if bias is None else bias.to(x.dtype), groups=w.shape[0])
        return y.transpose(1, 2)

    def diagonal_scan(log_a, x):
        """h_t = exp(log_a_t) h_{t-1} + x_t along dim 1, float32, log-depth (Hillis-Steele)."""
        log_a, h = log_a.float(), x.float()
        T, offset = h.shape[1], 1
        while offset < T:
            h = torch.cat([h[:, :offset], h[:, offset:] + torch.exp(log_a[:, offset:]) * h[:, :-offset]], 1)
            log_a = torch.cat([log_a[:, :offset], log_a[:, offset:] + log_a[:, :-offset]], 1)
            offset *= 2
        return h

    class Attention(nn.Module):
        def __init__(self, heads, kv_heads, window, output_gate=False):
            super().__init__()
            self.h, self.kv, self.hd, self.window = heads, kv_heads, d // heads, window
            self.w_out_gate = normal(heads * self.hd, d) if output_gate else None
            self.wq, self.wk, self.wv = normal(heads * self.hd, d), normal(kv_heads * self.hd, d), normal(kv_heads * self.hd, d)
            self.wo = normal(d, heads * self.hd)
            half = self.hd // 2
            inv = 10000.0 ** (-2.0 * torch.arange(half) / self.hd)
            angle = torch.arange(seq)[:, None] * inv[None, :]
            self.register_buffer("cos", torch.cos(angle)[None, None], persistent=False)
            self.register_buffer("sin", torch.sin(angle)[None, None], persistent=False)
            if 0 < window < seq:
                t = torch.arange(seq)
                band = (t[None, :] <= t[:, None]) & (t[:, None] - t[None, :] < window)
                self.register_buffer("mask", band, persistent=False)
            else:
                self.mask = None

        def rope(self, x):  # x [B, H, T, hd], rotate-half
            half = self.hd // 2
            x1, x2 = x[..., :half], x[..., half:]
            c, s = self.cos.to(x.dtype), self.sin.to(x.dtype)
            return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)

        def forward(self, x):
            B, T, _ = x.shape
            q = self.rope(F.linear(x, self.wq).view(B, T, self.h, self.hd).transpose(1, 2))
            k = self.rope(F.linear(x, self.wk).view(B, T, self.kv, self.hd).transpose(1, 2))
            v = F.linear(x, self.wv).view(B, T, self.kv, self.hd).transpose(1, 2)
            if self.kv != self.h:
                k = k.repeat_interleave(self.h // self.kv, dim=1)
                v = v.repeat_interleave(self.h // self.kv, dim=1)
            if hasattr(F, "scaled_dot_product_attention"):
                if self.mask is None:
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                else:
                    o = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)
            else:  # torch < 2.0 (CPU smoke tests only)
                allowed = self.mask if self.mask is not None else torch.ones(T, T, dtype=torch.bool).tril()
                scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
                o = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v
            o = o.transpose(1, 2).reshape(B, T, self.h * self.hd)
            if self.w_out_gate is not None:  # gated attention: sigmoid(x W_g^T) times the output
                o = o * torch.sigmoid(F.linear(x, self.w_out_gate))
            return F.linear(o, self.wo)

    class GatedDeltaNet(nn.Module):
        """Gated DeltaNet: silu(conv(x W^T)) for q, k, v; l2-normalised q (/ sqrt(hd)) and k; beta = sigmoid,
        log alpha = -exp(a_log) softplus(x W_a^T + dt_bias) per head; the chunked WY form of
        S_t = alpha S (I - beta k k^T) + beta v k^T, o = S q; per-head RMS norm times silu(x W_g^T); Wo."""

        def __init__(self, heads, short_conv, chunk=64):
            super().__init__()
            self.h, self.hd, self.chunk, self.k = heads, d // heads, chunk, short_conv
            self.wq, self.wk, self.wv, self.wg, self.wo = (normal(d, d) for _ in range(5))
            self.w_beta, self.w_alpha = normal(heads, d), normal(heads, d)
            self.a_log = nn.Parameter(torch.log(torch.arange(1, heads + 1, dtype=torch.float32)))
            self.dt_bias = nn.Parameter(torch.full((heads,), -3.0))
            bound = 1.0 / math.sqrt(short_conv)
            self.convs = nn.ParameterList([uniform(bound, d, short_conv) for _ in range(3)])
            self.o_norm = nn.Parameter(torch.ones(self.hd))

        def forward(self, x):
            B, T, _ = x.shape
            C, H, hd = min(self.chunk, T), self.h, self.hd
            N = T // C

            def heads_of(t):  # [B, T, D] -> [B, H, N, C, hd], float32
                return t.float().view(B, N, C, H, hd).permute(0, 3, 1, 2, 4)

            q, k, v = (heads_of(F.silu(causal_conv(F.linear(x, w), c)))
                       for w, c in zip((self.wq, self.wk, self.wv), self.convs))
            q = rmsnorm(q, None) / hd
            k = rmsnorm(k, None) / math.sqrt(hd)
            beta = torch.sigmoid(F.linear(x, self.w_beta).float()).view(B, N, C, H).permute(0, 3, 1, 2)
            la = -torch.exp(self.a_log) * F.softplus(F.linear(x, self.w_alpha).float() + self.dt_bias)
            g = la.view(B, N, C, H).permute(0, 3, 1, 2).cumsum(-1)
            k_beta, v_beta = k * beta[..., None], v * beta[..., None]
            decay = (g[..., :, None] - g[..., None, :]).tril().exp().tril()
            strict = torch.ones(C, C, dtype=torch.bool, device=x.device).tril(-1)
            A = -(k_beta @ k.transpose(-1, -2) * decay).masked_fill(~strict, 0.0)
            for i in range(1, C):  # (I - A)^-1 by forward substitution
                A[..., i, :i] = A[..., i, :i].clone() + (A[..., i, :i, None].clone() * A[..., :i, :i].clone()).sum(-2)
            Tm = A + torch.eye(C, device=x.device)
            u, w = Tm @ v_beta, Tm @ (k_beta * g.exp()[..., None])
            causal = torch.ones(C, C, dtype=torch.bool, device=x.device).tril()
            S = q.new_zeros(B, H, hd, hd)
            out = []
            for c in range(N):
                qc, kc, gc = q[:, :, c], k[:, :, c], g[:, :, c]
                attn = (qc @ kc.transpose(-1, -2) * decay[:, :, c]).masked_fill(~causal, 0.0)
                v_new = u[:, :, c] - w[:, :, c] @ S
                out.append((qc * gc.exp()[..., None]) @ S + attn @ v_new)
                last = gc[..., -1:]
                S = S * last[..., None].exp() + (kc * (last - gc).exp()[..., None]).transpose(-1, -2) @ v_new
            o = rmsnorm(torch.stack(out, dim=2).reshape(B, H, T, hd), self.o_norm)
            o = o.transpose(1, 2).reshape(B, T, d) * F.silu(F.linear(x, self.wg).float())
            return F.linear(o.to(x.dtype), self.wo)

    class LinearAttention(nn.Module):
        """phi = elu + 1 after an optional short causal depthwise conv on each of q, k, v (no bias);
        causal sum_{s<=t} (q_t.k_s) v_s per head, chunked; per-head RMS norm / sqrt(hd)."""

        def __init__(self, heads, short_conv=0, chunk=64):
            super().__init__()
            self.h, self.hd, self.chunk = heads, d // heads, chunk
            self.wq, self.wk, self.wv, self.wo = normal(d, d), normal(d, d), normal(d, d), normal(d, d)
            self.short_conv = short_conv
            if short_conv:
                bound = 1.0 / math.sqrt(short_conv)
                self.q_conv, self.k_conv, self.v_conv = (uniform(bound, d, short_conv) for _ in range(3))

        def conv(self, t, name):
            return causal_conv(t, getattr(self, name)) if self.short_conv else t

        def forward(self, x):
            B, T, _ = x.shape
            C = min(self.chunk, T)
            N = T // C

            def split(t):  # [B, T, D] -> [B, H, N, C, hd]
                return t.view(B, N, C, self.h, self.hd).permute(0, 3, 1, 2, 4)

            q = split(F.elu(self.conv(F.linear(x, self.wq), "q_conv")) + 1.0)
            k = split(F.elu(self.conv(F.linear(x, self.wk), "k_conv")) + 1.0)
            v = split(self.conv(F.linear(x, self.wv), "v_conv"))
            causal = torch.ones(C, C, dtype=torch.bool, device=x.device).tril()
            intra = ((q @ k.transpose(-1, -2)).masked_fill(~causal, 0.0)) @ v
            states = k.transpose(-1, -2) @ v  # [B, H, N, hd, hd]: each chunk's sum of k v^T
            before = torch.cumsum(states.float(), dim=2) - states.float()  # earlier chunks only
            o = intra.float() + q.float() @ before
            o = rmsnorm(o, None) / math.sqrt(self.hd)
            o = o.permute(0, 2, 3, 1, 4).reshape(B, T, d)
            return F.linear(o.to(x.dtype), self.wo)

    class Recurrent(nn.Module):
        """Griffin: u = conv(x W_x^T) + b; log a = -8 r softplus(L); h = a h + sqrt(1 - a^2)(i u); y = (gelu(x W_y^T) h) W_out^T."""

        def __init__(self, width, kernel):
            super().__init__()
            self.w_x, self.w_y = normal(width, d), normal(width, d)
            self.conv, self.conv_bias = uniform(1 / math.sqrt(kernel), width, kernel), nn.Parameter(torch.zeros(width))
            self.w_a, self.w_i = normal(width, width), normal(width, width)
            self.b_a, self.b_i = nn.Parameter(torch.zeros(width)), nn.Parameter(torch.zeros(width))
            a = 0.9 + 0.099 * torch.rand(width)
            self.lam = nn.Parameter(torch.log(torch.expm1(-torch.log(a) / 8.0)))
            self.w_out = normal(d, width)

        def forward(self, x):
            u = causal_conv(F.linear(x, self.w_x), self.conv, self.conv_bias)
            r = torch.sigmoid(F.linear(u, self.w_a, self.b_a)).float()
            i = torch.sigmoid(F.linear(u, self.w_i, self.b_i)).float()
            log_a = -8.0 * r * F.softplus(self.lam)
            h = diagonal_scan(log_a, torch.sqrt(-torch.expm1(2.0 * log_a)) * (i * u.float()))
            gate = F.gelu(F.linear(x, self.w_y), approximate="tanh")
            return F.linear(gate * h.to(gate.dtype), self.w_out)

    class Mamba(nn.Module):
        """[x; z] = in_proj; u = silu(conv(x)); delta = softplus(dt); h = exp(delta A) h + delta B u; y = C h + d u."""

        def __init__(self, expand, d_state, kernel):
            super().__init__()
            di, self.n, self.r = expand * d, d_state, math.ceil(d / 16)
            self.di = di
            self.in_proj = normal(2 * di, d)
            self.conv, self.conv_bias = uniform(1 / math.sqrt(kernel), di, kernel), nn.Parameter(torch.zeros(di))
            self.x_proj = normal(self.r + 2 * d_state, di)
            self.dt_proj = uniform(1 / math.sqrt(self.r), di, self.r)
            delta = torch.exp(torch.rand(di) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_bias = nn.Parameter(delta + torch.log(-torch.expm1(-delta)))
            self.a_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1))
            self.d = nn.Parameter(torch.ones(di))
            self.out_proj = normal(d, di)

        def forward(self, x):
            xz = F.linear(x, self.in_proj)
            xr, z = xz[..., :self.di], xz[..., self.di:]
            u = F.silu(causal_conv(xr, self.conv, self.conv_bias))
            dbc = F.linear(u, self.x_proj)
            dt, Bm, Cm = dbc[..., :self.r], dbc[..., self.r:self.r + self.n], dbc[..., self.r + self.n:]
            delta = F.softplus(F.linear(dt, self.dt_proj, self.dt_bias).float())  # [B, T, di]
            A = -torch.exp(self.a_log.float())  # [di, n]
            uf = u.float()
            h = diagonal_scan(delta[..., None] * A, (delta * uf)[..., None] * Bm.float()[:, :, None, :])
            y = (h * Cm.float()[:, :, None, :]).sum(-1) + self.d * uf
            return F.linear((y.to(z.dtype) * F.silu(z)), self.out_proj)

    class Mamba2(nn.Module):
        """[z; xBC; dt] = in_proj; [x; B; C] = silu(conv(xBC)); dt = softplus(dt + dt_bias) per head;
        y = SSD(x, dt, A, B, C) + d x (A = -exp(a_log) per head, B and C shared); out = rmsnorm(y silu(z)) out_proj."""

        def __init__(self, expand, d_state, kernel, head_dim, chunk=64):
            super().__init__()
            self.di, self.n, self.p, self.chunk = expand * d, d_state, head_dim, chunk
            self.h = self.di // head_dim
            self.in_proj = normal(2 * self.di + 2 * d_state + self.h, d)
            conv_dim = self.di + 2 * d_state
            self.conv, self.conv_bias = uniform(1 / math.sqrt(kernel), conv_dim, kernel), nn.Parameter(torch.zeros(conv_dim))
            dt = torch.exp(torch.rand(self.h) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
            self.a_log = nn.Parameter(torch.log(torch.rand(self.h) * 15 + 1))
            self.d = nn.Parameter(torch.ones(self.h))
            self.norm = nn.Parameter(torch.ones(self.di))
            self.out_proj = normal(d, self.di)

        def ssd(self, x, dt, A, Bm, Cm):
            """The chunked SSD from a zero state; x [b, T, h, p], dt [b, T, h], B and C [b, T, n], float32."""
            b, T, h, p = x.shape
            Q = self.chunk
            pad = (-T) % Q
            if pad:
                x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
                Bm, Cm = F.pad(Bm, (0, 0, 0, pad)), F.pad(Cm, (0, 0, 0, pad))
            c = x.shape[1] // Q
            x, dt = x.reshape(b, c, Q, h, p), dt.reshape(b, c, Q, h)
            Bm, Cm = Bm.reshape(b, c, Q, -1), Cm.reshape(b, c, Q, -1)
            cum = torch.cumsum(dt * A, dim=2)
            mask = torch.tril(torch.ones(Q, Q, dtype=torch.bool, device=x.device))
            decay = torch.exp((cum[:, :, :, None, :] - cum[:, :, None, :, :]).masked_fill(~mask[:, :, None], float("-inf")))
            dtx = dt[..., None] * x
            scores = torch.einsum("bcin,bcjn->bcij", Cm, Bm)
            y = torch.einsum("bcij,bcijh,bcjhp->bcihp", scores, decay, dtx)
            states = torch.einsum("bcjn,bcjh,bcjhp->bchpn", Bm, torch.exp(cum[:, :, -1:] - cum), dtx)
            chunk_decay = torch.exp(cum[:, :, -1])
            entering = [torch.zeros_like(states[:, 0])]
            for k in range(c - 1):
                entering.append(chunk_decay[:, k, :, None, None] * entering[-1] + states[:, k])
            y = y + torch.einsum("bcin,bchpn,bcih->bcihp", Cm, torch.stack(entering, 1), torch.exp(cum))
            return y.reshape(b, c * Q, h, p)[:, :T]

        def forward(self, x):
            z, xbc, dt = F.linear(x, self.in_proj).split([self.di, self.di + 2 * self.n, self.h], dim=-1)
            xs, Bm, Cm = F.silu(causal_conv(xbc, self.conv, self.conv_bias)).float().split([self.di, self.n, self.n], -1)
            dt = F.softplus(dt.float() + self.dt_bias)
            xs = xs.unflatten(-1, (self.h, self.p))
            y = self.ssd(xs, dt, -torch.exp(self.a_log.float()), Bm, Cm) + self.d[:, None] * xs
            g = y.flatten(-2) * F.silu(z.float())
            return F.linear(rmsnorm(g, self.norm.float()).to(x.dtype), self.out_proj)

    class GatedConv(nn.Module):
        """LFM2: [B; C; x~] = x w_in^T; y = (C * conv(B * x~)) w_out^T."""

        def __init__(self, kernel):
            super().__init__()
            self.w_in = normal(3 * d, d)
            self.conv = uniform(1 / math.sqrt(kernel), d, kernel)
            self.w_out = normal(d, d)

        def forward(self, x):
            b, c, xt = F.linear(x, self.w_in).chunk(3, dim=-1)
            return F.linear(c * causal_conv(b * xt, self.conv), self.w_out)

    class SwiGLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.w_gate, self.w_up, self.w_down = normal(hidden, d), normal(hidden, d), normal(d, hidden)

        def forward(self, x):
            return F.linear(F.silu(F.linear(x, self.w_gate)) * F.linear(x, self.w_up), self.w_down)

    def mixer(cls, k):
        if cls == "sa":
            return Attention(k["heads"], k["kv_heads"], k["window"], k.get("output_gate", False))
        if cls == "deltanet":
            return GatedDeltaNet(k["heads"], k["short_conv"])
        if cls == "linattn":
            return LinearAttention(k["heads"], k.get("short_conv", 0))
        if cls == "rec":
            return Recurrent(k["width"], k["kernel"])
        if cls == "ssm":
            return Mamba(k["expand"], k["d_state"], k["kernel"])
        if cls == "ssd":
            return Mamba2(k["expand"], k["d_state"], k["kernel"], k["head_dim"])
        return GatedConv(k["kernel"])

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = normal(vocab, d)
            ops = []
            for cls, k in plan:
                ops += [mixer(cls, k), SwiGLU()]
            self.ops = nn.ModuleList(ops)
            self.norms = nn.ParameterList([nn.Parameter(torch.ones(d)) for _ in ops])
            self.final_norm = nn.Parameter(torch.ones(d))

        def forward(self, tokens, targets):
            x = F.embedding(tokens, self.embedding)
            for norm, op in zip(self.norms, self.ops):
                x = x + op(rmsnorm(x, norm))
            logits = F.linear(rmsnorm(x, self.final_norm), self.embedding)
            return F.cross_entropy(logits.float().view(-1, vocab), targets.reshape(-1))

    return Model()


def run_row(a):
    import torch  # inside the row, so its import counts in the whole-candidate time

    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    plan, hidden = layer_plan(a.preset, a.d_model, a.layers)
    model = build(torch, plan, hidden, a.d_model, a.vocab, a.seq).to(device)
    params_total = sum(p.numel() for p in model.parameters())
    params_non_embedding = params_total - model.embedding.numel()
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decayed, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}]
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(groups, lr=3e-3, betas=(0.9, 0.95), eps=1e-8, **fused)
    warmup = min(60, a.steps)

    def lr_at(step):  # linear warm-up, cosine to 10% (evaluator/lr_schedule.hpp)
        if step <= warmup:
            return 3e-3 * step / warmup
        p = (step - warmup) / max(1, a.steps - warmup)
        return 3e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    step_fn = model if a.mode == "eager" else torch.compile(model, mode=COMPILE_MODES[a.mode])
    graphs = a.mode == "reduce-overhead"  # CUDA graphs: mark where each step's replay begins
    gen = torch.Generator().manual_seed(a.seed)
    train = torch.randint(0, a.vocab, (a.batch * (a.seq + 1) * 64,), generator=gen, dtype=torch.int64)
    valid = torch.randint(0, a.vocab, (a.eval_tokens + 1,), generator=gen, dtype=torch.int64)
    offsets = torch.arange(a.seq + 1)
    # The training batches are drawn on the device: drawn on the host and
    # copied, the step's data phase took about 4 ms of host time on the H200
    # machine (docs/benchmarks.md), which no PyTorch user would leave in a loop.
    train_on_device, offsets_on_device = train.to(device), offsets.to(device)
    batch_gen = torch.Generator(device=device).manual_seed(a.seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times, status, error = [], "ok", ""
    # The host clock and a device event after each phase of the step (no
    # extra synchronisation); --breakdown reports them. They are recorded in
    # every CUDA row: without them, every reduce-overhead row we ran came out
    # at 8.00 ms at d 128 and near 16.0 ms at d 256 whatever the model (a
    # floor of the harness, cause not found), with them the same rows measure
    # 3.4-6.0 ms and 10.1-12.2 ms (docs/benchmarks.md, issue 17).
    phases = ["data", "forward", "backward", "clip", "optimizer", "loss read"]
    marks = []

    def mark():
        if device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            marks[-1].append((time.perf_counter(), event))

    sync()
    last = time.perf_counter()
    train_start = last
    for step in range(1, a.steps + 1):
        if a.cuda_profile_steps and step == a.steps - a.cuda_profile_steps + 1:
            torch.cuda.cudart().cudaProfilerStart()  # for `ncu --profile-from-start off`
        marks.append([])
        mark()
        starts = torch.randint(0, train.numel() - a.seq - 1, (a.batch,), generator=batch_gen, device=device)
        window = train_on_device[starts[:, None] + offsets_on_device]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        mark()
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast:
            loss = step_fn(window[:, :-1], window[:, 1:])
        mark()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mark()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        mark()
        opt.step()
        mark()
        value = loss.item()  # the trainer's non-finite check: one host read per step
        sync()
        mark()
        now = time.perf_counter()
        times.append(now - last)
        last = now
        if not math.isfinite(value):
            status, error = "non_finite_loss", "loss %r at step %d" % (value, step)
            break
    if a.cuda_profile_steps:
        torch.cuda.cudart().cudaProfilerStop()
    train_s = time.perf_counter() - train_start

    eval_start = time.perf_counter()
    windows = a.eval_tokens // a.seq
    total, count = 0.0, 0
    with torch.no_grad(), autocast:
        for w0 in range(0, windows, a.batch):
            # Full batches keep one compiled shape; a short last batch repeats its
            # last window (the defaults divide evenly: 65536 tokens = 32 or 4 batches).
            idx = torch.arange(w0, w0 + a.batch).clamp(max=windows - 1)
            block = valid[idx[:, None] * a.seq + offsets].to(device)
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            loss = step_fn(block[:, :-1], block[:, 1:])
            total += loss.item() * a.batch * a.seq
            count += a.batch * a.seq
    eval_s = time.perf_counter() - eval_start
    perplexity = math.exp(total / count) if count else float("inf")
    whole = seconds_since_process_start()

    breakdown = {}
    if a.breakdown and marks and marks[-1]:
        kept = marks[a.warmup:] or marks
        for i, phase in enumerate(phases):
            host = sorted(1e3 * (m[i + 1][0] - m[i][0]) for m in kept)
            dev = sorted(m[i][1].elapsed_time(m[i + 1][1]) for m in kept)
            breakdown[phase] = {"host_ms": host[len(host) // 2], "device_ms": dev[len(dev) // 2]}
    step = sorted(times[a.warmup:] or times)
    median = step[len(step) // 2] if len(step) % 2 else 0.5 * (step[len(step) // 2 - 1] + step[len(step) // 2])
    fpt = flops_per_token(plan, a.d_model, a.vocab, a.seq, params_non_embedding)
    tokens_per_s = a.batch * a.seq / median
    row = dict(impl="torch-" + a.mode, preset=a.preset, d_model=a.d_model, layers=a.layers, batch=a.batch,
               seq=a.seq, vocab=a.vocab, steps=a.steps, params=params_total,
               params_non_embedding=params_non_embedding, flops_per_token=fpt, ms_per_step=median * 1e3,
               tokens_per_s=tokens_per_s, mfu=fpt * tokens_per_s / PEAK_FLOPS, train_s=train_s, eval_s=eval_s,
               whole_s=whole, perplexity=perplexity, status=status, error=error,
               torch=torch.__version__, first_step_s=times[0] if times else None)
    if breakdown:
        row["breakdown"] = breakdown
        row["step_ms"] = [round(1e3 * t, 3) for t in times]
    print("JSON " + json.dumps(row), flush=True)
    return 0 if status == "ok" else 1


def row_args(a, preset, d, layers, seq, vocab, mode):
    return ["--row", "--mode", mode, "--preset", preset, "--d-model", str(d), "--layers", str(layers),
            "--batch", str(a.batch), "--seq", str(seq), "--vocab", str(vocab), "--steps", str(a.steps),
            "--warmup", str(a.warmup), "--eval-tokens", str(a.eval_tokens), "--device", a.device,
            "--seed", str(a.seed), "--cuda-profile-steps", str(a.cuda_profile_steps)] + (
                ["--breakdown"] if a.breakdown else [])


def precompile(a, rows, mode):
    """Warms torch.compile's caches: every row's compile, N processes at a time."""
    from concurrent.futures import ThreadPoolExecutor
    start = time.time()

    def warm(row):
        preset, d, layers, seq, vocab = row
        args = row_args(a, preset, d, layers, seq, vocab, mode)
        args[args.index("--steps") + 1] = "2"
        args[args.index("--warmup") + 1] = "0"
        try:
            out = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, capture_output=True,
                                 text=True, timeout=a.row_timeout)
            return "ok" if "JSON " in out.stdout else "failed: " + (out.stderr or out.stdout)[-300:]
        except subprocess.TimeoutExpired:
            return "timed out after %.0f s" % a.row_timeout

    with ThreadPoolExecutor(max_workers=a.precompile) as pool:
        results = list(pool.map(warm, rows))
    for row, result in zip(rows, results):
        print("precompile %-16s %-20s %5d: %s" % (mode, row[0], row[1], result), flush=True)
    print("precompiled %d rows in %.0f s with %d processes" % (len(rows), time.time() - start, a.precompile),
          flush=True)


def orchestrate(a):
    # Width outer, preset inner: with a deadline, every preset gets its narrow row first.
    rows = [(p, int(d), a.layers, a.seq, a.vocab) for d in a.d_models.split(",")
            for p in (a.presets.split(",") if a.presets else PRESETS)]
    if a.mfu_row:
        mfu = ("transformer", 512, 8, 1024, 50304)
        rows = [mfu] + rows if a.mfu_first else rows + [mfu]
    compiled = [m for m in a.mode.split(",") if m != "eager"]
    warm_cache = a.precompile > 0 and bool(compiled)
    for mode in compiled if warm_cache else []:
        precompile(a, rows, mode)
    start = time.time()
    print("%-14s %-20s %5s %3s %5s %6s %10s %12s %7s %9s %10s" % (
        "impl", "preset", "d", "L", "T", "vocab", "ms/step", "tok/s", "MFU", "whole s", "ppl"), flush=True)
    failures = 0
    for mode in a.mode.split(","):
        for preset, d, layers, seq, vocab in rows:
            left = a.deadline - (time.time() - start) if a.deadline else None
            if left is not None and left < 5:
                print("%-14s %-20s %5d: skipped (deadline)" % ("torch-" + mode, preset, d), flush=True)
                failures += 1
                continue
            limit = min(a.row_timeout, left) if left is not None else a.row_timeout
            cmd = [sys.executable, os.path.abspath(__file__)] + row_args(a, preset, d, layers, seq, vocab, mode)
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
                lines = [l[5:] for l in out.stdout.splitlines() if l.startswith("JSON ")]
                if not lines:
                    sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
            except subprocess.TimeoutExpired:
                lines = []
                sys.stderr.write("torch-%s %s d%d: timed out after %.0f s\n" % (mode, preset, d, limit))
            if not lines:
                print("%-14s %-20s %5d: no result" % ("torch-" + mode, preset, d), flush=True)
                failures += 1
                continue
            j = json.loads(lines[-1])
            if mode != "eager":
                j["cache"] = "warm" if warm_cache else "cold"
            print("%-14s %-20s %5d %3d %5d %6d %10.3f %12.0f %6.1f%% %9.2f %10.3f %s" % (
                j["impl"], preset, d, layers, seq, vocab, j["ms_per_step"], j["tokens_per_s"], 100 * j["mfu"],
                j["whole_s"], j["perplexity"], j["status"]), flush=True)
            print("JSON " + json.dumps(j), flush=True)
            failures += j["status"] != "ok"
    return 0 if failures == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", default="eager,compile",
                   help="comma-separated: eager, compile, reduce-overhead (torch.compile with CUDA graphs), "
                        "max-autotune-no-cudagraphs")
    p.add_argument("--presets", default="", help="comma-separated (default: all of PRESETS)")
    p.add_argument("--d-models", default="128,512")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--eval-tokens", type=int, default=65536)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mfu-row", type=int, default=1, help="1: add transformer V 50304 d 512 L 8 T 1024 B 16")
    p.add_argument("--mfu-first", type=int, default=1, help="1: run the MFU row before the others")
    p.add_argument("--row-timeout", type=float, default=240.0, help="seconds one row may take")
    p.add_argument("--deadline", type=float, default=0.0, help="seconds for all rows (0: none)")
    p.add_argument("--precompile", type=int, default=0,
                   help="N > 0: warm torch.compile's caches first, N rows at a time (see above)")
    p.add_argument("--breakdown", action="store_true",
                   help="per phase of the step (data, forward, backward, clip, optimizer, loss read): the median "
                        "host and device milliseconds, in each row's JSON")
    p.add_argument("--cuda-profile-steps", type=int, default=0,
                   help="the last N training steps between cudaProfilerStart and Stop (for a profiler started "
                        "with profiling off, e.g. ncu --profile-from-start off)")
    p.add_argument("--row", action="store_true", help="internal: run one row in this process")
    p.add_argument("--preset", default="transformer", help="internal: the row's preset")
    p.add_argument("--d-model", type=int, default=128, help="internal: the row's width")
    a = p.parse_args()
    for mode in a.mode.split(","):
        if mode != "eager" and mode not in COMPILE_MODES:
            p.error("--mode: unknown mode %r (expected eager, %s)" % (mode, ", ".join(COMPILE_MODES)))
    if a.row:
        return run_row(a)
    return orchestrate(a)


if __name__ == "__main__":
    sys.exit(main())
