

# ------------------------------------------------------------ linattn

GLA_TEMPERATURE = 16.0  # log alpha = logsigmoid(.) / 16: GLA's slow, low-temperature decay
LINEAR_ATTENTION_CHUNK = 16

FEATURE_MAPS = {
    "elu_plus_one": lambda t: F.elu(t) + 1.0,
    "relu": F.relu,
    "identity": lambda t: t,
}


def chunked_linear_attention(q, k, v, log_alpha, chunk=LINEAR_ATTENTION_CHUNK):
    """o_t = S_t^T q_t with S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, for all t without a loop over tokens.
    q, k, log_alpha: [batch, heads, time, dk]; v: [batch, heads, time, dv]; float32.
    With b_t the decay summed from the chunk's start to t (inclusive), inside a chunk
        o_t = sum_{s<=t} (q_t e^{b_t}) . (k_s e^{-b_s}) v_s  +  (q_t e^{b_t}) S_start,
    a masked matrix product (GLA's chunked form); the states at chunk ends are a linear scan over
    chunks. Short chunks keep e^{-b_s} finite: a channel would have to decay by e^-80 within one
    chunk of 16 tokens (gate logits near -80) to overflow."""
    batch, heads, time, dk = q.shape
    pad = (-time) % chunk
    if pad:  # padded keys are zero and do not decay: they add nothing
        q, k, v, log_alpha = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v, log_alpha))
    n = (time + pad) // chunk
    q, k, v, log_alpha = (t.reshape(batch, heads, n, chunk, -1) for t in (q, k, v, log_alpha))
    b = log_alpha.cumsum(dim=3)
    total = b[:, :, :, -1:]  # the chunk's whole decay
    q_in, k_in = q * b.exp(), k * (-b).exp()
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    intra = (q_in @ k_in.transpose(-1, -2)).masked_fill(~causal, 0.0) @ v
    # S after chunk c = diag(e^{total_c}) S after chunk c-1 + sum_s (k_s e^{total_c - b_s}) v_s^T
    updates = (k * (total - b).exp()).transpose(-1, -2) @ v  # [batch, heads, n, dk, dv]
    decays = total.transpose(-1, -2).exp().expand_as(updates)
    after = linear_scan(decays.movedim(2, 1), updates.movedim(2, 1)).movedim(1, 2)
    entering = torch.cat([torch.zeros_like(after[:, :, :1]), after[:, :, :-1]], dim=2)
    o = intra + q_in @ entering
    return o.reshape(batch, heads, n * chunk, -1)[:, :, :time]


class LinearAttention(nn.Module):
    """linattn: causal linear attention with a feature map phi, optionally gated (GLA).
        q_g = phi(x Wq_g^T), k_g = phi(x Wk_g^T), v = x Wv^T         (g = 1, or 1 and 2 when differential)
        log alpha = logsigmoid(x W_gate^T + gate_bias) / 16           (gated: a decay per key channel)
        S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,  o_t = S_t^T q_t      (per head, an hd x hd state)
        o = o_1, or o_1 - (0.8 + lambda_h) o_2 (differential)
        y = (rms_norm_per_head(o) * c / sqrt(hd)) Wo^T,  c = 1, or 1 - 0.8 when differential
    Feature sharing: reads the k, v and decay (decode: the state) of an earlier linattn; it owns only
    wq, wo (and lambda). Decode state: S per group, [batch, heads, hd, hd].
    Short convolution (short_conv = kernel > 0): x Wq^T, x Wk^T and x Wv^T each pass a causal depthwise
    convolution without bias (q_conv, k_conv, v_conv: [channels, kernel]) before phi; the decode state is
    then (S, {conv histories: the last kernel - 1 inputs})."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.heads = gene["heads"]
        self.head_dim = d_model // self.heads
        self.phi = FEATURE_MAPS[gene["feature_map"]]
        self.gated = gene["gated"]
        self.groups = 2 if gene["differential"] else 1
        self.owns_features = gene.get("share_features") is None
        width = self.heads * self.head_dim
        self.wq = normal(self.groups * width, d_model)
        if self.owns_features:
            self.wk = normal(self.groups * width, d_model)
            self.wv = normal(width, d_model)
        self.wo = out_projection(d_model, width, n_slots=n_slots)
        if self.gated and self.owns_features:
            self.w_gate = normal(width, d_model)
            self.gate_bias = zeros(width)
        if self.groups == 2:
            add_lambda(self, self.heads)
        self.short_conv = gene.get("short_conv", 0)
        if self.short_conv:
            self.q_conv = fan_in_uniform(self.groups * width, self.short_conv)
            if self.owns_features:
                self.k_conv = fan_in_uniform(self.groups * width, self.short_conv)
                self.v_conv = fan_in_uniform(width, self.short_conv)

    def split_heads(self, t, groups=1):
        """[batch, time, groups * heads * hd] -> [groups, batch, heads, time, hd], float32."""
        batch, time, _ = t.shape
        return t.float().view(batch, time, groups, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def features(self, x, convs=None):
        """What a feature sharer reads: k per group, v and the log decay (zeros when not gated)."""
        k = self.split_heads(self.phi(short_convolution(self, F.linear(x, self.wk), "k_conv", convs)),
                             self.groups)
        v = self.split_heads(short_convolution(self, F.linear(x, self.wv), "v_conv", convs))[0]
        if self.gated:
            log_alpha = self.split_heads(F.logsigmoid(F.linear(x, self.w_gate) + self.gate_bias))[0]
            log_alpha = log_alpha / GLA_TEMPERATURE
        else:
            log_alpha = torch.zeros_like(v)
        return k, v, log_alpha

    def output(self, o, x):
        """o: one [batch, heads, time, hd] per group -> y [batch, time, d_model]."""
        scale = 1.0 / math.sqrt(self.head_dim)
        if self.groups == 2:
            lam = lambda_of(self).view(1, -1, 1, 1)
            out = differential_heads(o[0], o[1], lam, (1.0 - LAMBDA_INIT) * scale)
        else:
            out = rms_norm(o[0]) * scale
        batch, _, time, _ = out.shape
        return F.linear(out.transpose(1, 2).reshape(batch, time, -1).type_as(x), self.wo)

    def forward(self, x, shared=None):
        q = self.split_heads(self.phi(short_convolution(self, F.linear(x, self.wq), "q_conv", None)),
                             self.groups)
        k, v, log_alpha = self.features(x) if self.owns_features else shared
        o = [chunked_linear_attention(q[g], k[g], v, log_alpha) for g in range(self.groups)]
        return self.output(o, x), (k, v, log_alpha)

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model]; state: S [groups, batch, heads, hd, hd] or None; shared: the
        source's S, already updated with this token. Returns y and the new state.
        With the short convolution, state and shared are (S, conv histories)."""
        convs = None
        if self.short_conv:
            convs = dict(state[1]) if state is not None else {}
            state = state[0] if state is not None else None
            shared = shared[0] if shared is not None else None
        q = self.split_heads(self.phi(short_convolution(self, F.linear(x, self.wq), "q_conv", convs)),
                             self.groups)
        q = q[:, :, :, 0]
        if self.owns_features:
            k, v, log_alpha = (t[..., 0, :] for t in self.features(x, convs))
            if state is None:
                state = x.new_zeros(self.groups, x.shape[0], self.heads, self.head_dim, self.head_dim).float()
            state = log_alpha.exp()[..., None] * state + k[..., :, None] * v[..., None, :]
        s = state if self.owns_features else shared
        o = [q[g][..., None, :] @ s[g] for g in range(self.groups)]  # [batch, heads, 1, hd]
        return self.output(o, x), ((state, convs) if self.short_conv else state)
