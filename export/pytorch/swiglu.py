

# ------------------------------------------------------------ swiglu


class SwiGLU(nn.Module):
    """swiglu: the gated MLP, y = (silu(x W_gate^T) * x W_up^T) W_down^T; no token mixing, no state."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        hidden = gene["hidden"]
        self.w_gate = normal(hidden, d_model)
        self.w_up = normal(hidden, d_model)
        self.w_down = out_projection(d_model, hidden, n_slots=n_slots)

    def forward(self, x, shared=None):
        return F.linear(F.silu(F.linear(x, self.w_gate)) * F.linear(x, self.w_up), self.w_down), None

    def step(self, x, state, shared, position):
        return self.forward(x)
