

# ------------------------------------------------------------ ssm


def ssm_dt_bias(size):
    """softplus(dt_bias) starts log-uniform in [1e-3, 1e-1] (Mamba)."""
    dt = torch.exp(torch.empty(size).uniform_(math.log(1e-3), math.log(1e-1)))
    return nn.Parameter(dt + torch.log(-torch.expm1(-dt)))


class MambaBlock(nn.Module):
    """ssm: Mamba's selective state-space block (Gu and Dao, 2023).
        [x; z] = x_in in_proj^T                     (x: the scanned channels, z: d_inner = expand * d_model)
        u = silu(conv_k(x) + conv_bias)             (depthwise, causal)
        [delta_raw; B; C] = u x_proj^T               (dt_rank = ceil(d_model / 16), d_state, d_state)
        delta = softplus(delta_raw dt_proj^T + dt_bias),  A = -exp(a_log)
        h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  y_t = C_t . h_t + d u_t      (per channel, d_state)
        out = (y * silu(z)) out_proj^T
    Differential: the scanned channels are doubled (B and C shared) and y = y_1 - (0.8 + diff_lambda) y_2
    before the silu(z) gate. Decode state: the last k-1 conv inputs and h [batch, channels, d_state]."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.d_inner = gene["expand"] * d_model
        self.d_state, kernel = gene["d_state"], gene["conv_kernel"]
        self.dt_rank = (d_model + 15) // 16
        self.differential = gene["differential"]
        self.scanned = (2 if self.differential else 1) * self.d_inner
        self.in_proj = normal(self.scanned + self.d_inner, d_model)
        self.conv = fan_in_uniform(self.scanned, kernel)
        self.conv_bias = zeros(self.scanned)
        self.x_proj = normal(self.dt_rank + 2 * self.d_state, self.scanned)
        self.dt_proj = fan_in_uniform(self.scanned, self.dt_rank)
        self.dt_bias = ssm_dt_bias(self.scanned)
        # S4D-real: A_n = -(n + 1)
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.scanned, 1)
        self.a_log = nn.Parameter(torch.log(a))
        self.d = ones(self.scanned)
        if self.differential:
            self.diff_lambda = zeros(self.d_inner)
        self.out_proj = out_projection(d_model, self.d_inner, n_slots=n_slots)

    def scan_inputs(self, x, conv_state=None):
        """u, the decay exp(delta A), the input delta B u, C, z and the conv state, float32 where scanned."""
        xz = F.linear(x, self.in_proj)
        conv_out, conv_state = causal_conv(xz[..., :self.scanned], self.conv, self.conv_bias, conv_state)
        u = F.silu(conv_out).float()
        dt, B, C = F.linear(u, self.x_proj).float().split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(F.linear(dt, self.dt_proj).float() + self.dt_bias)
        A = -torch.exp(self.a_log)
        decay = torch.exp(delta[..., None] * A)  # [batch, time, channels, d_state]
        inputs = (delta * u)[..., None] * B[..., None, :]
        return u, decay, inputs, C, xz[..., self.scanned:], conv_state

    def output(self, x, h, u, C, z):
        y = (h * C[..., None, :]).sum(-1) + self.d * u
        if self.differential:
            y = differential_halves(y, self.diff_lambda)
        return F.linear((y * F.silu(z.float())).type_as(x), self.out_proj)

    def forward(self, x, shared=None):
        u, decay, inputs, C, z, _ = self.scan_inputs(x)
        return self.output(x, linear_scan(decay, inputs), u, C, z), None

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model]; state: (conv inputs, h) or None."""
        conv_state, h = state if state is not None else (None, None)
        u, decay, inputs, C, z, conv_state = self.scan_inputs(x, conv_state)
        h = inputs if h is None else decay * h + inputs
        return self.output(x, h, u, C, z), (conv_state, h)


SSD_CHUNK = 64  # the chunk length of the SSD form (livsearch's kScanChunk)


def chunked_ssd(x, dt, A, B, C, chunk=SSD_CHUNK):
    """Mamba-2's SSD in its chunked matrix form (Dao and Gu, 2024), from a zero state:
        H_t = exp(dt_t A) H_{t-1} + dt_t x_t B_t^T,  y_t = H_t C_t        (per head; H: [head_dim, d_state])
    x [batch, time, heads, head_dim], dt [batch, time, heads], A [heads], B and C [batch, time, d_state]
    (shared by the heads). Inside a chunk the outputs are masked matrix products,
        y_i = sum_{j <= i} (C_i . B_j) exp(cum_i - cum_j) dt_j x_j,   cum = cumsum(dt A) within the chunk;
    across chunks a short scan carries the state entering each chunk, which adds exp(cum_i) C_i . H."""
    batch, time, heads, head_dim = x.shape
    pad = (-time) % chunk
    if pad:  # zero dt past the end: no input, no decay, nothing reaches earlier outputs
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
    n_chunks = x.shape[1] // chunk
    x = x.reshape(batch, n_chunks, chunk, heads, head_dim)
    dt = dt.reshape(batch, n_chunks, chunk, heads)
    B = B.reshape(batch, n_chunks, chunk, -1)
    C = C.reshape(batch, n_chunks, chunk, -1)
    cum = torch.cumsum(dt * A, dim=2)  # [batch, chunks, chunk, heads]
    causal = torch.tril(torch.ones(chunk, chunk, dtype=torch.bool, device=x.device))
    gaps = (cum[:, :, :, None, :] - cum[:, :, None, :, :]).masked_fill(~causal[:, :, None], float("-inf"))
    scores = torch.einsum("bcin,bcjn->bcij", C, B)
    dtx = dt[..., None] * x
    y = torch.einsum("bcij,bcijh,bcjhp->bcihp", scores, torch.exp(gaps), dtx)
    # Each chunk's contribution to the state after it, then the states entering the chunks.
    states = torch.einsum("bcjn,bcjh,bcjhp->bchpn", B, torch.exp(cum[:, :, -1:] - cum), dtx)
    chunk_decay = torch.exp(cum[:, :, -1])  # [batch, chunks, heads]
    entering = [torch.zeros_like(states[:, 0])]
    for c in range(n_chunks - 1):
        entering.append(chunk_decay[:, c, :, None, None] * entering[-1] + states[:, c])
    H = torch.stack(entering, dim=1)
    y = y + torch.einsum("bcin,bchpn,bcih->bcihp", C, H, torch.exp(cum))
    return y.reshape(batch, n_chunks * chunk, heads, head_dim)[:, :time]


def ssd_a_log(heads):
    """Mamba-2: A_h uniform in [1, 16]."""
    return nn.Parameter(torch.log(torch.empty(heads).uniform_(1.0, 16.0)))


class Mamba2Block(nn.Module):
    """ssm with form "mamba2": Mamba-2's SSD block (Dao and Gu, 2024), a scalar decay per head.
        [z; xBC; dt] = x_in in_proj^T                 (z: d_inner; xBC: scanned + 2 d_state; dt: heads)
        [x; B; C] = silu(conv_k(xBC) + conv_bias)     (depthwise, causal; B, C shared by the heads)
        dt = softplus(dt + dt_bias),  A_h = -exp(a_log[h])
        H_t = exp(dt_t A_h) H_{t-1} + dt_t x_t B_t^T,  y_t = H_t C_t + d[h] x_t    (chunked_ssd in training)
        out = (rms_norm(y * silu(z)) * norm) out_proj^T                         (the gated RMSNorm)
    heads = scanned / head_dim. Differential: the scanned heads are doubled and y = y_1 - (0.8 + diff_lambda)
    y_2 before the gate. Decode state: the last k-1 conv inputs and H [batch, heads, head_dim, d_state]."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.d_inner = gene["expand"] * d_model
        self.d_state, kernel, self.head_dim = gene["d_state"], gene["conv_kernel"], gene["head_dim"]
        self.differential = gene["differential"]
        self.scanned = (2 if self.differential else 1) * self.d_inner
        self.heads = self.scanned // self.head_dim
        self.in_proj = normal(self.d_inner + self.scanned + 2 * self.d_state + self.heads, d_model)
        self.conv = fan_in_uniform(self.scanned + 2 * self.d_state, kernel)
        self.conv_bias = zeros(self.scanned + 2 * self.d_state)
        self.dt_bias = ssm_dt_bias(self.heads)
        self.a_log = ssd_a_log(self.heads)
        self.d = ones(self.heads)
        if self.differential:
            self.diff_lambda = zeros(self.d_inner)
        self.norm = ones(self.d_inner)
        self.out_proj = out_projection(d_model, self.d_inner, n_slots=n_slots)

    def scan_inputs(self, x, conv_state=None):
        """x [batch, time, heads, head_dim], dt, B, C (float32), z and the conv state."""
        z, xbc, dt = F.linear(x, self.in_proj).split(
            [self.d_inner, self.scanned + 2 * self.d_state, self.heads], dim=-1)
        xbc, conv_state = causal_conv(xbc, self.conv, self.conv_bias, conv_state)
        xs, B, C = F.silu(xbc).float().split([self.scanned, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt.float() + self.dt_bias)
        return xs.unflatten(-1, (self.heads, self.head_dim)), dt, B, C, z, conv_state

    def output(self, x, y, xs, z):
        y = (y + self.d[:, None] * xs).flatten(-2)
        if self.differential:
            y = differential_halves(y, self.diff_lambda)
        return F.linear(rms_norm(y * F.silu(z.float()), self.norm).type_as(x), self.out_proj)

    def forward(self, x, shared=None):
        xs, dt, B, C, z, _ = self.scan_inputs(x)
        return self.output(x, chunked_ssd(xs, dt, -torch.exp(self.a_log), B, C), xs, z), None

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model]; state: (conv inputs, H) or None."""
        conv_state, H = state if state is not None else (None, None)
        xs, dt, B, C, z, conv_state = self.scan_inputs(x, conv_state)
        decay = torch.exp(dt[:, 0] * -torch.exp(self.a_log))[..., None, None]  # [batch, heads, 1, 1]
        inputs = (dt[:, 0, :, None] * xs[:, 0])[..., None] * B[:, 0, None, None, :]
        H = inputs if H is None else decay * H + inputs
        y = (H * C[:, 0, None, None, :]).sum(-1)[:, None]  # [batch, 1, heads, head_dim]
        return self.output(x, y, xs, z), (conv_state, H)


def SsmBlock(gene, d_model, n_slots):
    """ssm: Mamba's selective scan (form "mamba1", the default) or Mamba-2's SSD (form "mamba2")."""
    if gene.get("form", "mamba1") == "mamba2":
        return Mamba2Block(gene, d_model, n_slots)
    return MambaBlock(gene, d_model, n_slots)
