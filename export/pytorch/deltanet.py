

# ------------------------------------------------------------ deltanet


def gdn_dt_bias(size):
    """softplus(dt_bias) starts log-uniform in [1e-3, 1e-1] (Mamba-2, Gated DeltaNet)."""
    dt = torch.exp(torch.rand(size) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return nn.Parameter(dt + torch.log(-torch.expm1(-dt)))


def delta_rule(q, k, v, log_alpha, beta, state=None):
    """The gated delta rule, in order over time. q, k, v: [batch, heads, time, hd] (q, k normalised),
    log_alpha (None: no decay), beta: [batch, heads, time]; state: S [batch, heads, hd (k), hd (v)] or None.
        S' = alpha_t S,  w_t = beta_t (v_t - S'^T k_t),  S_t = S' + k_t w_t^T,  o_t = S_t^T q_t
    Returns o [batch, heads, time, hd] and the last S."""
    batch, heads, time, hd = q.shape
    if state is None:
        state = q.new_zeros(batch, heads, hd, v.shape[-1])
    out = []
    for t in range(time):
        if log_alpha is not None:
            state = log_alpha[:, :, t, None, None].exp() * state
        u = (k[:, :, t, :, None] * state).sum(-2)
        w = beta[:, :, t, None] * (v[:, :, t] - u)
        state = state + k[:, :, t, :, None] * w[:, :, None, :]
        out.append((q[:, :, t, :, None] * state).sum(-2))
    return torch.stack(out, dim=2), state


DELTA_RULE_CHUNK = 16


def chunked_delta_rule(q, k, v, log_alpha, beta, chunk=DELTA_RULE_CHUNK):
    """delta_rule's outputs for whole sequences from a zero state, without a loop over tokens (the WY / UT
    form of Gated DeltaNet, as fla's reference chunk algorithm). Inside a chunk, with g the decay summed
    from the chunk's start, the chunk's updates solve a unit lower-triangular system
    T = (I + tril_strict(beta_i k_i.k_j e^{g_i - g_j}))^-1 once; u = T (beta v) and w = T (beta k e^g) then
    give the new values v_new = u - w S entering the state, and
        o = (q e^g) S + tril((q k^T) e^{g_i - g_j}) v_new,   S <- e^{g_last} S + (k e^{g_last - g})^T v_new.
    Every exponent is <= 0 (decays only), so nothing overflows. Returns o and the last S."""
    batch, heads, time, hd = q.shape
    if log_alpha is None:
        log_alpha = torch.zeros_like(beta)
    pad = (-time) % chunk
    if pad:  # padded steps have beta 0 (no update) and no decay
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        log_alpha, beta = (F.pad(t, (0, pad)) for t in (log_alpha, beta))
    n = (time + pad) // chunk
    q, k, v = (t.reshape(batch, heads, n, chunk, -1) for t in (q, k, v))
    g = log_alpha.reshape(batch, heads, n, chunk).cumsum(-1)
    beta = beta.reshape(batch, heads, n, chunk)
    k_beta, v_beta = k * beta[..., None], v * beta[..., None]
    decay = (g[..., :, None] - g[..., None, :]).tril().exp().tril()  # e^{g_i - g_j} for i >= j
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril(-1)
    A = -(k_beta @ k.transpose(-1, -2) * decay).masked_fill(~strict, 0.0)
    for i in range(1, chunk):  # forward substitution: rows of (I - A)^-1 - I
        A[..., i, :i] = A[..., i, :i].clone() + (A[..., i, :i, None].clone() * A[..., :i, :i].clone()).sum(-2)
    T = A + torch.eye(chunk, dtype=A.dtype, device=q.device)
    u = T @ v_beta
    w = T @ (k_beta * g.exp()[..., None])
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    S = q.new_zeros(batch, heads, hd, v.shape[-1])
    out = []
    for c in range(n):
        qc, kc, gc = q[:, :, c], k[:, :, c], g[:, :, c]
        attn = (qc @ kc.transpose(-1, -2) * decay[:, :, c]).masked_fill(~causal, 0.0)
        v_new = u[:, :, c] - w[:, :, c] @ S
        out.append((qc * gc.exp()[..., None]) @ S + attn @ v_new)
        last = gc[..., -1:]
        S = S * last[..., None].exp() + (kc * (last - gc).exp()[..., None]).transpose(-1, -2) @ v_new
    return torch.cat(out, dim=2)[:, :, :time], S


class GatedDeltaNet(nn.Module):
    """deltanet: Gated DeltaNet (Yang et al. 2024), plain DeltaNet when not gated; d_k = d_v = hd.
        q~, k~, v = silu(conv(x W^T)) each (conv: the short causal depthwise convolution, when on)
        q = l2(q~) / sqrt(hd), k = l2(k~),  l2(t) = rms_norm(t) / sqrt(hd) = t / sqrt(|t|^2 + hd eps)
        beta = sigmoid(x W_beta^T),  log alpha = -exp(a_log) softplus(x W_alpha^T + dt_bias)  (per head)
        S_t^T = alpha_t S_{t-1}^T (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,  o_t = S_t^T q_t
        y = (rms_norm_per_head(o) * o_norm * silu(x W_out_gate^T)) Wo^T
    forward() uses the chunked (WY) form, step() the recurrence itself.
    Decode state: (S [batch, heads, hd, hd], {conv histories}); no feature sharing, no differential form."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.heads = gene["heads"]
        self.head_dim = d_model // self.heads
        self.gated = gene["gated"]
        self.short_conv = gene["short_conv"]
        width = self.heads * self.head_dim
        self.wq, self.wk, self.wv = normal(width, d_model), normal(width, d_model), normal(width, d_model)
        self.w_beta = normal(self.heads, d_model)
        if self.gated:
            self.w_alpha = normal(self.heads, d_model)
            self.a_log = nn.Parameter(torch.log(torch.arange(1, self.heads + 1, dtype=torch.float32)))
            self.dt_bias = gdn_dt_bias(self.heads)
        if self.short_conv:
            self.q_conv = fan_in_uniform(width, self.short_conv)
            self.k_conv = fan_in_uniform(width, self.short_conv)
            self.v_conv = fan_in_uniform(width, self.short_conv)
        self.w_out_gate = normal(width, d_model)
        self.o_norm = ones(self.head_dim)
        self.wo = out_projection(d_model, width, n_slots=n_slots)

    def heads_of(self, t):
        """[batch, time, heads * hd] -> [batch, heads, time, hd], float32."""
        batch, time, _ = t.shape
        return t.float().view(batch, time, self.heads, self.head_dim).transpose(1, 2)

    def inputs(self, x, convs=None):
        """q, k, v, log_alpha, beta of the recurrence; convs (decode): the conv histories, updated."""
        qkv = []
        for name, weight in (("q_conv", self.wq), ("k_conv", self.wk), ("v_conv", self.wv)):
            t = F.linear(x, weight)
            if self.short_conv:
                t, history = causal_conv(t, getattr(self, name), None, None if convs is None else convs.get(name))
                if convs is not None:
                    convs[name] = history
            qkv.append(self.heads_of(F.silu(t)))
        scale = 1.0 / math.sqrt(self.head_dim)
        q, k, v = rms_norm(qkv[0]) * (scale * scale), rms_norm(qkv[1]) * scale, qkv[2]
        beta = torch.sigmoid(F.linear(x, self.w_beta).float()).transpose(1, 2)
        log_alpha = None
        if self.gated:
            z = F.linear(x, self.w_alpha).float() + self.dt_bias
            log_alpha = (-torch.exp(self.a_log) * F.softplus(z)).transpose(1, 2)
        return q, k, v, log_alpha, beta

    def output(self, o, x):
        """o [batch, heads, time, hd] -> y [batch, time, d_model]."""
        batch, _, time, _ = o.shape
        o = rms_norm(o, self.o_norm).transpose(1, 2).reshape(batch, time, -1)
        o = o * F.silu(F.linear(x, self.w_out_gate).float())
        return F.linear(o.type_as(x), self.wo)

    def forward(self, x, shared=None):
        q, k, v, log_alpha, beta = self.inputs(x)
        o, _ = chunked_delta_rule(q, k, v, log_alpha, beta)
        return self.output(o, x), None

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model]; state: (S, conv histories) or None."""
        S, convs = (None, {}) if state is None else (state[0], dict(state[1]))
        q, k, v, log_alpha, beta = self.inputs(x, convs)
        o, S = delta_rule(q, k, v, log_alpha, beta, S)
        return self.output(o, x), (S, convs)
