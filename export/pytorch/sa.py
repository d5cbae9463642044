

# ------------------------------------------------------------ sa

ROPE_THETA = 10000.0


def rope(t, positions):
    """Rotate-half RoPE (GPT-NeoX, Llama: pairs (i, i + hd/2)) on t [batch, time, ..., hd] at `positions`."""
    hd = t.shape[-1]
    half = hd // 2
    inv_freq = ROPE_THETA ** (-2.0 * torch.arange(half, dtype=torch.float64, device=t.device) / hd)
    angle = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    shape = (1, len(positions)) + (1,) * (t.dim() - 3) + (half,)
    cos, sin = angle.cos().float().view(shape), angle.sin().float().view(shape)
    t_1, t_2 = t[..., :half], t[..., half:]
    return torch.cat([t_1 * cos - t_2 * sin, t_1 * sin + t_2 * cos], dim=-1)


def softmax_attention(q, k, v, causal, window=0):
    """softmax(q k^T / sqrt(hd)) v on [batch, heads, time, hd]; k and v may have fewer (kv) heads (GQA/MQA).
    causal: query i sees keys j <= i, and with a window only the last `window` of them (its own included)."""
    # Under autocast v comes out of a bf16 product while RoPE and qk-norm give float32; SDPA wants one dtype.
    q, k = q.to(v.dtype), k.to(v.dtype)
    repeat = q.shape[1] // k.shape[1]
    if repeat > 1:
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
    mask = None
    if causal and window > 0:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        mask = (j <= i) & (i - j < window)
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        if mask is None:
            mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1).type_as(v) @ v


class Attention(nn.Module):
    """sa: causal softmax attention (MHA, GQA, MQA) with RoPE, optional qk-RMSNorm and sliding window.
        q = x Wq^T, k = x Wk^T, v = x Wv^T; q, k <- rms_norm per head (qk_norm), then RoPE
        y = attention(q, k, v) Wo^T
    Differential: two groups (q_1, k_1), (q_2, k_2) in the doubled rows of wq and wk (group 1 first), one v:
        a = attention(q_1, k_1, v) - (0.8 + lambda_h) attention(q_2, k_2, v)
        y = (rms_norm_per_head(a) * (1 - 0.8)) Wo^T
    Feature sharing: an sa that shares features reads the K and V of an earlier sa (it has no wk, wv,
    k_norm and no cache). Decode state: the K cache of each group and the V cache, [batch, kv_heads,
    positions, hd], holding the last `window` positions when windowed.
    Short convolution (short_conv = kernel > 0): x Wq^T, x Wk^T and x Wv^T each pass a causal depthwise
    convolution without bias (q_conv, k_conv, v_conv: [channels, kernel]) before qk-norm and RoPE; decode
    also keeps their last kernel - 1 inputs. Output gate (gated attention): the attention output is
    multiplied by sigmoid(x W_out_gate^T) before Wo. State: (K cache, V cache, {conv histories})."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.heads, self.kv_heads = gene["heads"], gene["kv_heads"]
        self.head_dim = d_model // self.heads
        self.window, self.qk_norm, self.use_rope = gene["window"], gene["qk_norm"], gene["rope"]
        self.groups = 2 if gene["differential"] else 1
        self.owns_kv = gene.get("share_features") is None
        hq, hkv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.wq = normal(self.groups * hq, d_model)
        if self.owns_kv:
            self.wk = normal(self.groups * hkv, d_model)
            self.wv = normal(hkv, d_model)
        self.wo = out_projection(d_model, hq, n_slots=n_slots)
        if self.qk_norm:
            self.q_norm = ones(self.head_dim)
            if self.owns_kv:
                self.k_norm = ones(self.head_dim)
        if self.groups == 2:
            add_lambda(self, self.heads)
        self.short_conv = gene.get("short_conv", 0)
        if self.short_conv:
            self.q_conv = fan_in_uniform(self.groups * hq, self.short_conv)
            if self.owns_kv:
                self.k_conv = fan_in_uniform(self.groups * hkv, self.short_conv)
                self.v_conv = fan_in_uniform(hkv, self.short_conv)
        self.output_gate = gene.get("output_gate", False)
        if self.output_gate:
            self.w_out_gate = normal(hq, d_model)

    def project(self, x, weight, heads, gain, positions, conv_name="q_conv", convs=None):
        """q or k: [groups, batch, heads, time, hd], normed and rotated."""
        batch, time, _ = x.shape
        t = short_convolution(self, F.linear(x, weight), conv_name, convs)
        t = t.view(batch, time, self.groups, heads, self.head_dim)
        if self.qk_norm:
            t = rms_norm(t, gain)
        if self.use_rope:
            t = rope(t, positions)
        return t.permute(2, 0, 3, 1, 4)

    def values(self, x, convs=None):
        batch, time, _ = x.shape
        v = short_convolution(self, F.linear(x, self.wv), "v_conv", convs)
        return v.view(batch, time, self.kv_heads, self.head_dim).transpose(1, 2)

    def output(self, a, x):
        """a: one [batch, heads, time, hd] per group -> y [batch, time, d_model]."""
        out = a[0]
        if self.groups == 2:
            out = differential_heads(a[0], a[1], lambda_of(self).view(1, -1, 1, 1), 1.0 - LAMBDA_INIT)
        batch, _, time, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, time, -1)
        if self.output_gate:
            out = out * torch.sigmoid(F.linear(x, self.w_out_gate))
        return F.linear(out, self.wo)

    def forward(self, x, shared=None):
        """x: [batch, time, d_model]; shared: the (K, V) of the sa this one reads.
        Returns y and the (K, V) this op attends over (what a feature sharer reads)."""
        positions = torch.arange(x.shape[1], device=x.device)
        q = self.project(x, self.wq, self.heads, getattr(self, "q_norm", None), positions)
        if self.owns_kv:
            k = self.project(x, self.wk, self.kv_heads, getattr(self, "k_norm", None), positions, "k_conv")
            v = self.values(x)
        else:
            k, v = shared
        a = [softmax_attention(q[g], k[g], v, causal=True, window=self.window) for g in range(self.groups)]
        return self.output(a, x), (k, v)

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model] at `position`; state: this op's (K cache, V cache, conv
        histories) or None; shared: the source's state (already holding this token). Returns y and the
        new state."""
        positions = torch.tensor([position], device=x.device)
        convs = dict(state[2]) if state is not None else {}
        q = self.project(x, self.wq, self.heads, getattr(self, "q_norm", None), positions, "q_conv", convs)
        if self.owns_kv:
            k = self.project(x, self.wk, self.kv_heads, getattr(self, "k_norm", None), positions, "k_conv",
                             convs)
            v = self.values(x, convs)
            if state is not None:
                k, v = torch.cat([state[0], k], dim=3), torch.cat([state[1], v], dim=2)
            if self.window > 0:
                k, v = k[:, :, :, -self.window:], v[:, :, -self.window:]
            state = (k, v, convs)
        else:
            k, v = shared[0], shared[1]
            state = (None, None, convs)
        a = [softmax_attention(q[g], k[g], v, causal=False) for g in range(self.groups)]
        return self.output(a, x), state
